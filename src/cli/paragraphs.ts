/**
 * A command's help text as oclif should get it: paragraphs separated by a blank line, each on one line (oclif wraps
 * them to the terminal; a line break inside a paragraph would come out as a ragged short line). Source texts keep
 * their line breaks for reading; `paragraphs` joins them.
 */
export function paragraphs(text: string): string {
  return text
    .split(/\n[ \t]*\n/)
    .map((p) => p.split('\n').map((l) => l.trim()).filter(Boolean).join(' '))
    .filter(Boolean)
    .join('\n\n');
}
