import { masked, type Branch } from '../branch.js';

/**
 * The ticket's mask and θ0's signs with one magnitude per layer, the root mean square of
 * the layer's initial weights (Zhou et al., NeurIPS 2019: with the signs kept, a
 * reinitialised ticket trains about as well as the ticket itself).
 */
export const reinitSignBranch: Branch = {
  name: 'reinit_sign',
  label: 'signed constant',
  description: "the ticket's mask; each weight sign(θ0) times its layer's RMS of θ0",
  start: (ctx) => {
    const init = new Map([...ctx.rewind].map(([n, w]) => {
      if (!ctx.levelMask.has(n)) return [n, Float32Array.from(w)];
      let s = 0;
      for (let i = 0; i < w.length; i++) s += w[i] * w[i];
      const rms = Math.sqrt(s / w.length);
      return [n, w.map((x) => (x > 0 ? rms : x < 0 ? -rms : 0))];
    }));
    return { init: masked(init, ctx.levelMask), mask: ctx.levelMask };
  },
};
