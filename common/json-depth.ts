// How deep a JSON text nests, found by one linear scan before parsing: deeply nested JSON parses
// but later overflows the stack wherever it is walked recursively (JSON.stringify, validation).

/**
 * True when `text` opens more than `maxDepth` arrays or objects inside one another. Strings are
 * skipped whole (a bracket inside one is text), so the scan is linear in the text's length.
 */
export function nestsDeeperThan(text: string, maxDepth: number): boolean {
  let depth = 0
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i)
    if (char === QUOTE) {
      i = closingQuote(text, i)
      if (i < 0) return false
    } else if (char === OPEN_BRACE || char === OPEN_BRACKET) {
      if (++depth > maxDepth) return true
    } else if (char === CLOSE_BRACE || char === CLOSE_BRACKET) {
      depth--
    }
  }
  return false
}

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d

// The index of the quote that ends the string opened at `open`, or -1 if it never ends (the
// parser will refuse that text anyway). A quote preceded by an odd run of backslashes is escaped.
function closingQuote(text: string, open: number): number {
  let at = open
  while (true) {
    at = text.indexOf('"', at + 1)
    if (at < 0) return -1
    let backslashes = 0
    while (text.charCodeAt(at - 1 - backslashes) === BACKSLASH) backslashes++
    if (backslashes % 2 === 0) return at
  }
}
