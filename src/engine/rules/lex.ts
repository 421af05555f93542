/**
 * Tokens of the failover rule language, each with its 1-based line and column in the file the text came from.
 *
 * - `word`: a run of letters, digits and `_ . - * ?` (labels, keywords, resource references, states, actions);
 * - `punct`: `: ; ( ) ! != == && ||`;
 * - `other`: any other single character (the parser reports it where it is not expected);
 * - `end`: the end of the text, positioned just after its last character.
 * Whitespace separates tokens; `#` starts a comment that runs to the end of the line.
 */
export interface Token {
  kind: 'word' | 'punct' | 'other' | 'end';
  text: string;
  line: number;
  column: number;
}

/** Where the text starts in its file: the text of `<failover>` may begin mid-line. */
export interface TextStart {
  file: string;
  line: number;
  column: number;
}

const WORD = /[A-Za-z0-9_.\-*?]/;
const TWO = new Set(['!=', '==', '&&', '||']);
const ONE = new Set([':', ';', '(', ')', '!']);

/** Splits `text` into tokens ending with one `end` token. Never throws: unknown characters become `other` tokens.
 *  Columns count code points; a tab is one column. */
export function lex(text: string, at: TextStart): Token[] {
  const tokens: Token[] = [];
  let line = at.line;
  let column = at.column;
  let i = 0;
  const advance = (n: number): void => {
    for (let k = 0; k < n; k++, i++) {
      const c = text.charCodeAt(i);
      if (c === 10) {
        line++;
        column = 1;
      } else if (c < 0xdc00 || c > 0xdfff) {
        column++;
      }
    }
  };
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '#') {
      const nl = text.indexOf('\n', i);
      advance((nl < 0 ? text.length : nl) - i);
      continue;
    }
    if (/\s/.test(ch)) {
      advance(1);
      continue;
    }
    const start = { line, column };
    let n = 1;
    let kind: Token['kind'];
    if (WORD.test(ch)) {
      while (i + n < text.length && WORD.test(text[i + n]!)) n++;
      kind = 'word';
    } else if (TWO.has(text.slice(i, i + 2))) {
      n = 2;
      kind = 'punct';
    } else if (ONE.has(ch)) {
      kind = 'punct';
    } else {
      n = String.fromCodePoint(text.codePointAt(i)!).length;
      kind = 'other';
    }
    tokens.push({ kind, text: text.slice(i, i + n), ...start });
    advance(n);
  }
  tokens.push({ kind: 'end', text: '', line, column });
  return tokens;
}
