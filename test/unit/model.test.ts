import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { closedFormBound, inFlightRisk, layerFailure, runModel, upper95 } from '../../src/model/redundancy';

const model = suite('redundancy model');

model('closed form: no loss is safe, total loss is hopeless, more layers or smaller r help', () => {
  assert.is(closedFormBound(8, 3, 0), 0);
  assert.is(closedFormBound(8, 3, 1), 1);
  for (const p of [0.001, 0.01, 0.05]) {
    assert.ok(closedFormBound(8, 4, p) < closedFormBound(8, 3, p));
    assert.ok(closedFormBound(4, 3, p) < closedFormBound(8, 3, p));
    assert.ok(closedFormBound(8, 3, p) < closedFormBound(8, 3, p * 2));
    // One layer fails when any of the r transmissions that rebuild a packet is lost.
    const exact = 1 - (1 - p) ** 8;
    assert.ok(Math.abs(layerFailure(8, p) - exact) < 1e-15);
  }
});

model('in-flight risk falls with each repair already sent, from p with none to p times the bound with all', () => {
  const p = 0.01;
  assert.is(inFlightRisk(8, 0, p), p);
  for (let k = 1; k <= 3; k++) assert.ok(inFlightRisk(8, k, p) < inFlightRisk(8, k - 1, p));
  assert.ok(Math.abs(inFlightRisk(8, 3, p) - p * closedFormBound(8, 3, p)) < 1e-18);
  assert.throws(() => inFlightRisk(8, -1, p), /whole number/);
});

model('simulation of the real codec: iid at or below the bound, bursts worse than iid at equal loss', () => {
  const iid = runModel({ r: 8, c: 3, interleaves: [1, 10, 100], loss: 0.01, packets: 300_000, seed: 3 });
  assert.ok(iid.dataLost > 2500);
  assert.ok(iid.simulated <= iid.bound, `${iid.simulated} > ${iid.bound}`);
  assert.is(iid.recovered + iid.unrecovered, iid.dataLost);
  const bursty = runModel({ r: 8, c: 3, loss: 0.01, burstLength: 20, packets: 300_000, seed: 3 });
  assert.ok(bursty.simulated > iid.simulated);
  // With bursts of mean 20 the loss rate is still about 1%.
  assert.ok(Math.abs(bursty.dataLost / bursty.packets - 0.01) < 0.004, `${bursty.dataLost}`);
});

model('confidence bound and input checks', () => {
  assert.is(upper95(0, 1000), 0.003);
  assert.ok(upper95(5, 100) > 0.05 && upper95(5, 100) < 0.12);
  assert.throws(() => runModel({ loss: 1.5 }), /probability/);
  assert.throws(() => runModel({ loss: 0.01, burstLength: 0.5 }), /burst length/);
  assert.throws(() => runModel({ loss: 0.01, packets: 0 }), /packets/);
});

model.run();
