// A lab, and a lab with both gateways running, for a test or a bench: built, handed to `fn`, and
// torn down on every way out (gateways stopped, then the lab destroyed), also when `fn` throws.
//
//   await withLab({ delayMs: 10 }, async (lab) => { ... });
//   const { result, a, b } = await withLabGateways({ delayMs: 1, loss: 0.01 }, {}, async ({ lab, gw }) => { ... });
//   // a and b: each gateway's final counters, to assert on after the run
//   await withLab(settings, async (lab) => { ...without gateways...; await withGateways(lab, {}, async (gw) => ...) });
import type { EngineStats } from '../native/addon';
import { startGateways } from './gateways';
import type { GatewayProcess } from './gateways';
import { Lab } from './lab';

export type LabSettings = Parameters<typeof Lab.create>[0];

export async function withLab<T>(settings: LabSettings, fn: (lab: Lab) => Promise<T>): Promise<T> {
  const lab = await Lab.create(settings);
  try {
    return await fn(lab);
  } finally {
    await lab.destroy();
  }
}

export interface GatewayOptions {
  extra?: string[];                     // to both gateways' `maelstrom up`
  only?: { a?: string[]; b?: string[] }; // to one of them
}

// Both gateways of a lab running around `fn`; their final counters come back with its result.
export async function withGateways<T>(lab: Lab, options: GatewayOptions,
  fn: (gw: { a: GatewayProcess; b: GatewayProcess }) => Promise<T>): Promise<{ result: T; a?: EngineStats; b?: EngineStats }> {
  const gw = await startGateways(lab, options.extra ?? [], options.only ?? {});
  const out: { result?: T; a?: EngineStats; b?: EngineStats } = {};
  try {
    out.result = await fn(gw);
  } finally {
    // Also when fn threw, and before the lab goes.
    out.a = await gw.a.stop();
    out.b = await gw.b.stop();
  }
  return out as { result: T; a?: EngineStats; b?: EngineStats };
}

export function withLabGateways<T>(settings: LabSettings, options: GatewayOptions,
  fn: (run: { lab: Lab; gw: { a: GatewayProcess; b: GatewayProcess } }) => Promise<T>): Promise<{ result: T; a?: EngineStats; b?: EngineStats }> {
  return withLab(settings, (lab) => withGateways(lab, options, (gw) => fn({ lab, gw })));
}
