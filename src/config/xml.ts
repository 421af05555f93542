import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { BugError, UserError } from '../errors.js';

/**
 * One element of a parsed XML document.
 * - `attrs`: attribute values exactly as written, entities decoded, not trimmed.
 * - `children`: child elements in document order (comments, PIs and text are not elements).
 * - `line`: 1-based line of the element's `<` in the file.
 * - `text`: the element's own text (text and CDATA children joined), trimmed; '' when there is none.
 */
export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  line: number;
  text: string;
}

type OrderedNode = Record<string, unknown> & { ':@'?: Record<string, string> };

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
});

/**
 * Parses a whole XML document with a single root element. `text` may be raw bytes (checked to be UTF-8) or a string;
 * a leading byte order mark is ignored. `file` names the file in error messages.
 * Throws UserError for an empty file, bytes that are not UTF-8, syntax errors (with their line) and several roots.
 */
export function parseXml(text: string | Uint8Array, file: string): XmlElement {
  let src = typeof text === 'string' ? text : decodeUtf8(text, file);
  if (src.startsWith('\uFEFF')) src = src.slice(1);
  if (src.trim() === '') throw new UserError(`${file} is empty. Write the XML configuration into it (see README: Configuration).`);

  const valid = XMLValidator.validate(src);
  if (valid !== true) {
    const { line, msg } = describeSyntaxError(valid.err, src);
    throw new UserError(`${file} line ${line}: ${msg}. Fix the XML syntax.`);
  }

  let nodes: OrderedNode[];
  try {
    nodes = parser.parse(src) as OrderedNode[];
  } catch (e) {
    throw new UserError(`${file}: cannot parse XML (${(e as Error).message}). Fix the XML syntax.`);
  }
  const lines = startTagLines(src);
  let next = 0;
  const build = (node: OrderedNode): XmlElement => {
    const name = elementName(node)!;
    const line = lines[next++] ?? 0;
    const children: XmlElement[] = [];
    let own = '';
    for (const child of node[name] as OrderedNode[]) {
      if ('#text' in child) own += String(child['#text']);
      else if (elementName(child) !== undefined) children.push(build(child));
    }
    return { name, attrs: { ...(node[':@'] ?? {}) }, children, line, text: own.trim() };
  };
  const roots = nodes.filter((n) => elementName(n) !== undefined).map(build);
  if (next !== lines.length) {
    throw new BugError(`xml: ${file} has ${lines.length} start tags but the parser produced ${next} elements`);
  }
  if (roots.length !== 1) {
    const second = roots[1];
    throw new UserError(
      roots.length === 0
        ? `${file} has no root element. Write one root element (e.g. <cluster> or <safe>).`
        : `${file} line ${second.line}: second root element <${second.name}>; an XML file has exactly one root. Put everything inside <${roots[0].name}>.`,
    );
  }
  return roots[0];
}

/** Decodes UTF-8 bytes; invalid bytes are a UserError naming the line they are on. */
export function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const bad = firstInvalidUtf8Byte(bytes);
    const line = 1 + bytes.subarray(0, bad).filter((b) => b === 0x0a).length;
    throw new UserError(`${file} line ${line}: the file is not valid UTF-8. Save it as UTF-8 (e.g. iconv -t UTF-8).`);
  }
}

/** Index of the byte at which strict UTF-8 decoding fails (bytes.length when only the end is truncated). */
function firstInvalidUtf8Byte(bytes: Uint8Array): number {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  for (let i = 0; i < bytes.length; i++) {
    try {
      decoder.decode(bytes.subarray(i, i + 1), { stream: true });
    } catch {
      return i;
    }
  }
  return bytes.length;
}

/**
 * Strict vocabulary check: every attribute of `el` must be in `allowedAttrs`, every child element in
 * `allowedChildren`, and `el` must have no text. Anything else is a UserError with its line, so unsupported
 * configuration is never silently ignored.
 */
export function expectOnly(el: XmlElement, allowedAttrs: string[], allowedChildren: string[], file: string): void {
  for (const attr of Object.keys(el.attrs)) {
    if (!allowedAttrs.includes(attr)) {
      throw new UserError(
        `${file} line ${el.line}: ${el.name} has attribute "${attr}" which tandem does not support. ` +
          `Remove it; supported: ${listOrNone(allowedAttrs)}.`,
      );
    }
  }
  for (const child of el.children) {
    if (!allowedChildren.includes(child.name)) {
      throw new UserError(
        `${file} line ${child.line}: ${el.name} has element <${child.name}> which tandem does not support. ` +
          `Remove it; supported: ${listOrNone(allowedChildren.map((c) => `<${c}>`))}.`,
      );
    }
  }
  if (el.text !== '') {
    throw new UserError(`${file} line ${el.line}: ${el.name} contains text "${clip(el.text)}" which tandem does not support. Remove it.`);
  }
}

function listOrNone(items: string[]): string {
  return items.length ? items.join(', ') : 'none';
}

function clip(s: string): string {
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

function elementName(node: OrderedNode): string | undefined {
  return Object.keys(node).find((k) => k !== ':@' && k !== '#text');
}

/** Turns fast-xml-parser's validation error into a line and a readable message (no trailing period). */
function describeSyntaxError(err: { code: string; msg: string; line: number }, src: string): { line: number; msg: string } {
  const msg = err.msg.replace(/\.$/, '');
  // The validator reports tags still open at the end of the input as "Invalid '[ "a", "b" ]' found" on line 1.
  const open = /^Invalid '\[(.*)\]' found$/s.exec(msg);
  if (open) {
    const names = [...open[1].matchAll(/"([^"]*)"/g)].map((m) => `<${m[1]}>`);
    const endLine = src.split('\n').length;
    return { line: endLine, msg: `the file ends before ${names.join(', ')} are closed (is it truncated?)` };
  }
  if (/^Unclosed tag/.test(msg)) return { line: err.line, msg: `${msg} (is the file truncated?)` };
  return { line: err.line, msg };
}

/**
 * 1-based lines of every element start tag, in document order (= pre-order of the element tree). Skips comments,
 * CDATA sections, processing instructions, DOCTYPE (with an internal subset) and end tags. Assumes `src` is
 * well-formed (validated before).
 */
export function startTagLines(src: string): number[] {
  const lines: number[] = [];
  let line = 1;
  let i = 0;
  const advanceTo = (end: number): void => {
    for (; i < end; i++) if (src.charCodeAt(i) === 10) line++;
  };
  const skipPast = (marker: string): void => {
    const at = src.indexOf(marker, i);
    advanceTo(at < 0 ? src.length : at + marker.length);
  };
  while (i < src.length) {
    const lt = src.indexOf('<', i);
    if (lt < 0) break;
    advanceTo(lt);
    if (src.startsWith('<!--', i)) skipPast('-->');
    else if (src.startsWith('<![CDATA[', i)) skipPast(']]>');
    else if (src.startsWith('<?', i)) skipPast('?>');
    else if (src.startsWith('<!', i)) skipDeclaration();
    else if (src.startsWith('</', i)) skipPast('>');
    else {
      lines.push(line);
      skipTag();
    }
  }
  return lines;

  function skipTag(): void {
    let quote = '';
    for (let j = i + 1; j < src.length; j++) {
      const c = src[j];
      if (quote) {
        if (c === quote) quote = '';
      } else if (c === '"' || c === "'") quote = c;
      else if (c === '>') return advanceTo(j + 1);
    }
    advanceTo(src.length);
  }

  /** `<!DOCTYPE …>` possibly with `[ … ]` holding declarations, quoted strings and comments. */
  function skipDeclaration(): void {
    let depth = 0;
    let quote = '';
    for (let j = i + 2; j < src.length; j++) {
      const c = src[j];
      if (quote) {
        if (c === quote) quote = '';
      } else if (src.startsWith('<!--', j)) {
        const end = src.indexOf('-->', j);
        j = end < 0 ? src.length : end + 2;
      } else if (c === '"' || c === "'") quote = c;
      else if (c === '[' || c === '<') depth++;
      else if (c === ']') depth--;
      else if (c === '>') {
        if (depth === 0) return advanceTo(j + 1);
        depth--;
      }
    }
    advanceTo(src.length);
  }
}

/**
 * The child elements of `el` named `name`, at most one: a second one is a UserError naming both lines.
 * Returns undefined when there is none.
 */
export function optionalChild(el: XmlElement, name: string, file: string): XmlElement | undefined {
  const found = el.children.filter((c) => c.name === name);
  if (found.length > 1) {
    throw new UserError(
      `${file} line ${found[1].line}: <${el.name}> has a second <${name}> (the first is on line ${found[0].line}). ` +
        `Keep only one <${name}>.`,
    );
  }
  return found[0];
}
