// `none`: no negatives, no triplet term (InfoNCE's in-batch negatives only).
import type { NegativeSampler } from '../negatives.js';

export function noNegatives(): NegativeSampler {
  return { sample: () => ({ negatives: null, hardCandidates: null }) };
}
