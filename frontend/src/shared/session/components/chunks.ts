/**
 * Splits the token sequence into rows for the virtualised heatmap: a row ends after a newline, at a
 * sentence end once it is long enough, or at a hard cap, so text still reads as paragraphs while
 * only the rows on screen are rendered.
 */
import type { TokenMessage } from "../../../api/types";

export const SOFT_ROW = 24;
export const HARD_ROW = 64;

/** Start seq of each row; row i spans [starts[i], starts[i+1]). */
export function rowStarts(tokens: readonly (TokenMessage | undefined)[], soft = SOFT_ROW, hard = HARD_ROW): number[] {
  const starts: number[] = [];
  let len = 0;
  for (let s = 0; s < tokens.length; s++) {
    if (len === 0) starts.push(s);
    len++;
    const text = tokens[s]?.text ?? "";
    if (text.includes("\n") || (len >= soft && /[.!?;:]\s*$/.test(text)) || len >= hard) len = 0;
  }
  return starts;
}

/** Index of the row that holds seq (binary search over the row starts). */
export function rowOf(starts: readonly number[], seq: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  if (hi < 0) return -1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= seq) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
