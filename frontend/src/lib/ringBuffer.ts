/**
 * A fixed-capacity ring of rows with numeric columns (Float64Array per column). Pushing past the
 * capacity overwrites the oldest row, so memory stays bounded however long a session runs.
 * NaN stands for "no value" (uPlot draws a gap there once converted to null).
 */
export class RingBuffer<C extends string> {
  readonly capacity: number;
  private readonly cols: Record<C, Float64Array>;
  private start = 0;
  private len = 0;

  constructor(columns: readonly C[], capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be ≥ 1, got ${capacity}`);
    this.capacity = capacity;
    this.cols = {} as Record<C, Float64Array>;
    for (const c of columns) this.cols[c] = new Float64Array(capacity);
  }

  get length(): number {
    return this.len;
  }

  push(row: Record<C, number>): void {
    const i = (this.start + this.len) % this.capacity;
    for (const c in this.cols) this.cols[c][i] = row[c];
    if (this.len < this.capacity) this.len++;
    else this.start = (this.start + 1) % this.capacity;
  }

  clear(): void {
    this.start = 0;
    this.len = 0;
  }

  /** Value of column c at logical index i (0 = oldest kept). */
  get(c: C, i: number): number {
    if (i < 0 || i >= this.len) throw new RangeError(`index ${i} out of [0, ${this.len})`);
    return this.cols[c][(this.start + i) % this.capacity]!;
  }

  /** Column c, oldest first, as a fresh array (what a chart library wants). */
  column(c: C): number[] {
    const out = new Array<number>(this.len);
    const col = this.cols[c];
    for (let i = 0; i < this.len; i++) out[i] = col[(this.start + i) % this.capacity]!;
    return out;
  }
}
