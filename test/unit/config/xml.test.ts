import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeUtf8, expectOnly, optionalChild, parseXml, startTagLines, type XmlElement } from '../../../src/config/xml.js';
import { throwsUserError } from './assert-user-error.js';

function el(name: string, line: number, attrs: Record<string, string> = {}, children: XmlElement[] = [], text = ''): XmlElement {
  return { name, attrs, children, line, text };
}

test('builds the element tree with 1-based lines, skipping comments, CDATA, PIs and DOCTYPE', () => {
  const doc = [
    '<?xml version="1.0" encoding="UTF-8"?>', // 1
    '<!DOCTYPE safe [ <!ENTITY e "v"> <!-- <x> --> ]>', // 2
    '<!-- a comment with <fake> tags', // 3
    '     over two lines <fake2/> -->', // 4
    '<safe>', // 5
    '  <service mode="mirror"', // 6
    '           failover="on">', // 7
    '    <heart pulse="500ms"><heartbeat name="default"/></heart>', // 8
    '    <![CDATA[ <notatag> ]]>', // 9
    '    <?pi <alsonot/> ?>', // 10
    '    <user><var name="A" value="x &amp; &lt;y&gt; > z"/></user>', // 11
    '  </service>', // 12
    '</safe>', // 13
  ].join('\n');
  assert.equal(
    parseXml(doc, 'f.xml'),
    el('safe', 5, {}, [
      el('service', 6, { mode: 'mirror', failover: 'on' }, [
        el('heart', 8, { pulse: '500ms' }, [el('heartbeat', 8, { name: 'default' })]),
        el('user', 11, {}, [el('var', 11, { name: 'A', value: 'x & <y> > z' })]),
      ], '<notatag>'),
    ]),
  );
});

test('keeps attribute values untrimmed and joins own text', () => {
  assert.equal(parseXml("<a k=' v '>\n hello <b/> world \n</a>", 'f'), el('a', 1, { k: ' v ' }, [el('b', 2)], 'hello  world'));
});

test('accepts bytes, single quotes, a byte order mark and CRLF line ends', () => {
  const bytes = new TextEncoder().encode('\uFEFF<a>\r\n<b x=\'é\'/>\r\n\r\n<c/></a>');
  assert.equal(parseXml(bytes, 'f'), el('a', 1, {}, [el('b', 2, { x: 'é' }), el('c', 4)]));
});

test('startTagLines ignores ">" inside quoted attribute values and end tags', () => {
  assert.equal(startTagLines('<a x="1>\n2">\n</a\n>'), [1]);
  assert.equal(startTagLines('<a>\n<b/>\n<c></c>\n<d\n/></a>'), [1, 2, 3, 4]);
});

test('empty and whitespace-only files are errors', () => {
  throwsUserError(() => parseXml('', 'cluster.xml'), 'cluster.xml is empty');
  throwsUserError(() => parseXml(' \n\t\n', 'cluster.xml'), 'cluster.xml is empty');
  throwsUserError(() => parseXml(new Uint8Array(), 'cluster.xml'), 'cluster.xml is empty');
});

test('bytes that are not UTF-8 are an error with their line', () => {
  const latin1 = Uint8Array.from([...new TextEncoder().encode('<a>\n<b x="'), 0xe9, ...new TextEncoder().encode('"/></a>')]);
  throwsUserError(() => parseXml(latin1, 'userconfig.xml'), 'userconfig.xml line 2', 'not valid UTF-8', 'Save it as UTF-8');
  throwsUserError(() => decodeUtf8(Uint8Array.from([0xff]), 'f'), 'f line 1', 'not valid UTF-8');
  const enc = new TextEncoder();
  throwsUserError(() => decodeUtf8(Uint8Array.from([...enc.encode('é\n€\n'), 0xc3]), 'f'), 'f line 3', 'not valid UTF-8');
  throwsUserError(() => decodeUtf8(Uint8Array.from([...enc.encode('a\n\nb'), 0xe2, 0x28, 0xa1, 0x0a]), 'f'), 'f line 3');
  assert.is(decodeUtf8(enc.encode('é€'), 'f'), 'é€');
});

test('syntax errors name the line and ask to fix the syntax', () => {
  throwsUserError(() => parseXml('<a>\n<b></c>\n</a>', 'f.xml'), 'f.xml line 2', "closing tag 'c'", 'Fix the XML syntax.');
  throwsUserError(() => parseXml('<a>\n  <b x="1" x="2"/>\n</a>', 'f.xml'), 'f.xml line 2', "Attribute 'x' is repeated", 'Fix the XML syntax.');
  throwsUserError(() => parseXml('<a>\n<b k/>\n</a>', 'f.xml'), 'f.xml line 2', "boolean attribute 'k'");
  throwsUserError(() => parseXml('hello', 'f.xml'), 'f.xml line 1', "char 'h'");
  throwsUserError(() => parseXml('<a></a>\njunk', 'f.xml'), 'f.xml line 2', 'Extra text');
  throwsUserError(() => parseXml('<a></a>\n<b></b>', 'f.xml'), 'f.xml line 2', 'root');
});

test('truncated documents say the file may be truncated', () => {
  throwsUserError(() => parseXml('<a>\n  <b x="1"/>\n  <c', 'f.xml'), 'f.xml line 3', '<a>, <c>', 'truncated', 'Fix the XML syntax.');
  throwsUserError(() => parseXml('<a>\n<b>\n</b>', 'f.xml'), 'f.xml line 1', "Unclosed tag 'a'", 'truncated');
  throwsUserError(() => parseXml('<a x="1', 'f.xml'), 'f.xml line 1', 'open quote');
  throwsUserError(() => parseXml('<a><!-- x', 'f.xml'), 'f.xml line 1', 'Fix the XML syntax.');
});

test('documents the parser refuses after validation (external entities) are errors', () => {
  throwsUserError(() => parseXml('<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<a>&x;</a>', 'f.xml'),
    'f.xml: cannot parse XML', 'External entities', 'Fix the XML syntax.');
});

test('two self-closing roots are an error naming the second', () => {
  throwsUserError(() => parseXml('<a/>\n<b/>', 'f.xml'), 'f.xml line 2', 'second root element <b>', 'inside <a>');
});

test('expectOnly accepts the allowed vocabulary', () => {
  const root = parseXml('<a x="1"><b/><c/></a>', 'f');
  expectOnly(root, ['x', 'y'], ['b', 'c'], 'f');
});

test('expectOnly rejects an unknown attribute with its line and the supported list', () => {
  const root = parseXml('<a>\n<b x="1" zz="2"/></a>', 'f');
  throwsUserError(() => expectOnly(root.children[0], ['x', 'y'], [], 'cfg.xml'),
    'cfg.xml line 2: b has attribute "zz" which tandem does not support. Remove it; supported: x, y.');
  throwsUserError(() => expectOnly(root.children[0], [], [], 'cfg.xml'), 'attribute "x"', 'supported: none.');
});

test('expectOnly rejects an unknown child element with the child line', () => {
  const root = parseXml('<a>\n<b/>\n<macro/></a>', 'f');
  throwsUserError(() => expectOnly(root, [], ['b', 'c'], 'cfg.xml'),
    'cfg.xml line 3: a has element <macro> which tandem does not support. Remove it; supported: <b>, <c>.');
});

test('expectOnly rejects text content', () => {
  const root = parseXml('<a>\n<b>some text</b></a>', 'f');
  throwsUserError(() => expectOnly(root.children[0], [], [], 'cfg.xml'), 'cfg.xml line 2', 'b contains text "some text"', 'Remove it.');
});

test('optionalChild returns the one child, undefined, or rejects a second one', () => {
  const root = parseXml('<a>\n<b/>\n<c/>\n<c/></a>', 'f');
  assert.is(optionalChild(root, 'b', 'f')?.line, 2);
  assert.is(optionalChild(root, 'x', 'f'), undefined);
  throwsUserError(() => optionalChild(root, 'c', 'cfg.xml'), 'cfg.xml line 4', 'second <c>', 'line 3', 'Keep only one');
});

test.run();
