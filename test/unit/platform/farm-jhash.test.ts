// The TypeScript jhash against vectors the kernel produced: nft `meta mark set jhash …` in a namespace, the marks
// counted per source (the 127.x ones), and the lab test's connections (198.51.100.x, test/lab/farm-filter.test.ts,
// where every connection landed on the node these buckets predict). A regression here moves clients between nodes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FARM_HASH_SEED, farmBucket, farmHashKey, jhash, reciprocalScale } from '../../../src/platform/farm/jhash.js';

test('on_addr: jhash ip saddr mod 256 seed 0x74616e64, as the kernel computed it', () => {
  const kernel: [string, number][] = [
    ['127.0.0.5', 114], ['127.0.0.77', 24], ['127.1.2.3', 188],
    ['198.51.100.128', 93], ['198.51.100.129', 28], ['198.51.100.130', 228], ['198.51.100.131', 220],
  ];
  assert.equal(kernel.map(([a]) => [a, farmBucket('on_addr', a)]), kernel);
});

test('on_port: jhash ip saddr . th sport mod 256 seed 0x74616e64, as the kernel computed it', () => {
  const kernel: [string, number, number][] = [
    ['127.0.0.5', 40001, 234], ['127.0.0.77', 40001, 16], ['127.1.2.3', 40001, 249],
    ['198.51.100.128', 41000, 225], ['198.51.100.128', 41001, 8], ['198.51.100.128', 41002, 54],
  ];
  assert.equal(kernel.map(([a, p]) => [a, p, farmBucket('on_port', a, p)]), kernel);
});

test('keys longer than 12 bytes (the mixing loop) and a modulus that is not a power of two, as the kernel computed it', () => {
  // jhash ip saddr . ip daddr . udp sport . udp dport mod 1000 seed 0x74616e64: 16 register bytes
  const key = (saddr: number, sport: number) => {
    const b = new Uint8Array(16);
    const v = new DataView(b.buffer);
    v.setUint32(0, saddr);
    v.setUint32(4, 0x7f000001);
    v.setUint16(8, sport);
    v.setUint16(12, 9999);
    return b;
  };
  const kernel: [number, number][] = [[0x7f000005, 205], [0x7f00004d, 576], [0x7f010203, 166]];
  assert.equal(kernel.map(([a]) => [a, reciprocalScale(jhash(key(a, 40001), FARM_HASH_SEED), 1000)]), kernel);
});

test('register layout: 4 address bytes, then for on_port the port and two zero bytes, all in network order', () => {
  assert.equal([...farmHashKey('on_addr', '198.51.100.7')], [198, 51, 100, 7]);
  assert.equal([...farmHashKey('on_port', '198.51.100.7', 0x1f90)], [198, 51, 100, 7, 0x1f, 0x90, 0, 0]);
});

test('jhash edge cases: empty key, every tail length, the scale', () => {
  assert.is(jhash(new Uint8Array(0), 0), 0xdeadbeef, 'no byte: the initial value untouched');
  const lengths = Array.from({ length: 25 }, (_, n) => jhash(new Uint8Array(n).fill(0xab), 7));
  assert.is(new Set(lengths).size, 25, 'every length hashes differently');
  for (const h of lengths) assert.ok(Number.isInteger(h) && h >= 0 && h <= 0xffffffff);
  assert.is(reciprocalScale(0, 256), 0);
  assert.is(reciprocalScale(0xffffffff, 256), 255);
  assert.is(reciprocalScale(0x80000000, 256), 128);
});

test('bad input is refused', () => {
  assert.throws(() => farmBucket('on_addr', '198.51.100'), /not an IPv4 address/);
  assert.throws(() => farmBucket('on_port', '198.51.100.7'), /source port/);
  assert.throws(() => farmBucket('on_port', '198.51.100.7', 70000), /source port/);
});

test.run();
