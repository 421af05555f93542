import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatDuration, parseDuration } from '../../../src/config/duration.js';
import { throwsUserError } from './assert-user-error.js';

const W = 'userconfig.xml line 3: <heart timeout="x">';

test('parses every unit into milliseconds', () => {
  assert.is(parseDuration('250us', W), 0.25);
  assert.is(parseDuration('500ms', W), 500);
  assert.is(parseDuration('5s', W), 5000);
  assert.is(parseDuration('2m', W), 120_000);
  assert.is(parseDuration('1h', W), 3_600_000);
  assert.is(parseDuration('1d', W), 86_400_000);
  assert.is(parseDuration('0m', W), 0);
});

test('parses decimals without float noise and ignores surrounding spaces', () => {
  assert.is(parseDuration('1.5s', W), 1500);
  assert.is(parseDuration('1.1s', W), 1100);
  assert.is(parseDuration('0.5ms', W), 0.5);
  assert.is(parseDuration(' 30s ', W), 30_000);
});

test('a bare number asks for a unit', () => {
  throwsUserError(() => parseDuration('500', W), W, '"500" has no unit', '500ms', 'us, ms, s, m, h, d');
  throwsUserError(() => parseDuration('1.5', W), W, '"1.5" has no unit');
});

test('negative, empty and garbage are errors naming where and the units', () => {
  throwsUserError(() => parseDuration('-5s', W), W, '"-5s" is negative', 'us, ms, s, m, h, d');
  throwsUserError(() => parseDuration('', W), W, 'empty', 'us, ms, s, m, h, d');
  throwsUserError(() => parseDuration('   ', W), W, 'empty');
  for (const bad of ['5x', 's', '5 s', '5S', '.5s', '5.s', '1e3ms', '5s5', '5sec', '0x10s']) {
    throwsUserError(() => parseDuration(bad, W), W, `"${bad.trim()}" is not a duration`, 'us, ms, s, m, h, d');
  }
});

test('formatDuration picks the largest exact unit', () => {
  assert.is(formatDuration(0), '0s');
  assert.is(formatDuration(0.25), '250us');
  assert.is(formatDuration(500), '500ms');
  assert.is(formatDuration(1500), '1500ms');
  assert.is(formatDuration(5000), '5s');
  assert.is(formatDuration(90_000), '90s');
  assert.is(formatDuration(120_000), '2m');
  assert.is(formatDuration(3_600_000), '1h');
  assert.is(formatDuration(172_800_000), '2d');
});

test('formatDuration round-trips through parseDuration', () => {
  for (const ms of [0.001, 0.25, 1, 999, 1500, 5000, 90_000, 86_400_000]) {
    assert.is(parseDuration(formatDuration(ms), W), ms);
  }
});

test.run();
