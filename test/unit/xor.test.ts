import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { addon } from '../../src/native/addon';
import { Rng } from '../helpers/packets';

test('every XOR implementation this CPU offers gives the byte-wise XOR, at every length and alignment', () => {
  const { available, active } = addon().xorImplementations();
  assert.ok(available.includes('portable'));
  assert.ok(available.includes(active));
  const rng = new Rng(11);
  for (const impl of available as ('portable' | 'avx2')[]) {
    for (const len of [0, 1, 7, 8, 31, 32, 33, 63, 64, 127, 128, 129, 1499, 1500, 4097]) {
      const offset = rng.int(0, 31);
      const backing = Buffer.alloc(len + 64);
      const src = Buffer.alloc(len);
      for (let i = 0; i < len; i++) src[i] = rng.int(0, 255);
      for (let i = 0; i < backing.length; i++) backing[i] = rng.int(0, 255);
      const before = Buffer.from(backing);
      const dst = backing.subarray(offset, offset + len);
      addon().xorInto(dst, src, impl);
      for (let i = 0; i < len; i++) assert.is(dst[i], before[offset + i] ^ src[i], `${impl} len ${len} byte ${i}`);
      assert.ok(backing.subarray(0, offset).equals(before.subarray(0, offset)), `${impl} wrote before the range`);
      assert.ok(backing.subarray(offset + len).equals(before.subarray(offset + len)), `${impl} wrote past the range`);
    }
  }
});

test.run();
