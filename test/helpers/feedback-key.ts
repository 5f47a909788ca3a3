// A site's feedback key for tests that play the gateway: its key file (mode 0600) for the
// listener, and a gateway's sender that seals feedback with it.
import path from 'node:path';
import { feedbackKeyOf, newMasterKey, writeKeyFile } from '../../src/gateway/keys';
import { AUTH_KIND, addon } from '../../src/native/addon';
import type { NativeAuthChannel } from '../../src/native/addon';

export interface TestFeedbackKey {
  master: Buffer;
  file: string;
  gateway: NativeAuthChannel;
  seal(feedback: Buffer): Buffer;
}

export function testFeedbackKey(dir: string, name = 'feedback.key'): TestFeedbackKey {
  const master = newMasterKey();
  const file = path.join(dir, name);
  writeKeyFile(file, 'feedback', feedbackKeyOf(master));
  const gateway = new (addon().AuthChannel)({ sendKey: feedbackKeyOf(master) });
  return { master, file, gateway, seal: (feedback) => gateway.seal(AUTH_KIND.feedback, feedback) };
}
