/** One evaluation of a training run: validation and test loss and accuracy at an iteration. */
export interface EvalPoint {
  readonly iteration: number;
  readonly valLoss: number;
  readonly valAccuracy: number;
  readonly testLoss: number;
  readonly testAccuracy: number;
}

/** The point of minimum validation loss; the earliest on ties. NaN losses never win. */
export function earlyStopPoint(curve: readonly EvalPoint[]): EvalPoint {
  let best = curve[0];
  for (const p of curve) if (p.valLoss < best.valLoss || Number.isNaN(best.valLoss)) best = p;
  return best;
}
