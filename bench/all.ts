/**
 * `npm run bench`: the LeNet epoch benchmark (bench.js), the training-step benchmarks of
 * Conv-2, Conv-6, ResNet-20 and VGG-16 (conv.js) and of Conv-6 masked at IMP level 10
 * against level 0 (conv.js --levels), the char_lstm and text_transformer step benchmarks (seq.js), dynamic sparse
 * training against dense (dst.js), structured pruning's compacted networks against dense
 * (structured.js), the fixed costs of a run
 * (startup.js) and the distributed queue's costs (queue.js), one after the other (never
 * concurrently: they would time each other).
 * `--json` and `--vs-torch` go to the first three; any other flag goes to the LeNet one. With --json the last stdout line is one
 * object: the LeNet fields at the top level (lenetEpochSeconds, torchLenetEpochSeconds,
 * ...), the conv nets' results under "conv2", "conv6", "resnet20" and "vgg16", the masked Conv-6's under "conv6Levels", the sequence models' under "seq", dynamic sparse training under "dst", compacted networks under "structured", the fixed
 * costs under "startup" and the queue's under "queue".
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const json = args.includes('--json');
const shared = args.filter((a) => a === '--json' || a === '--vs-torch');

function run(script: string, scriptArgs: string[]): Record<string, unknown> | null {
  const r = spawnSync(process.execPath, [path.join(here, script), ...scriptArgs], { stdio: ['ignore', json ? 'pipe' : 'inherit', 'inherit'], encoding: 'utf8' });
  if (r.status !== 0) process.exit(r.status ?? 1);
  if (!json) return null;
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

const lenet = run('bench.js', args);
if (!json) console.log('');
// `steps` timed steps; with --vs-torch in 5 rounds, lth's and PyTorch's in turn (conv.js and seq.js --rounds).
const timed = (steps: number) => (args.includes('--vs-torch') ? ['--steps', String(steps / 5), '--rounds', '5'] : ['--steps', String(steps)]);
// Conv-2's and Conv-6's steps are short next to the minute-to-minute swings of a shared
// machine, so a round takes 10 (Conv-2) or 5 (Conv-6) of them: with 2, one slow step moves
// the round's ratio.
const conv2 = run('conv.js', [...shared, ...timed(50)]);
if (!json) console.log('');
const conv6 = run('conv.js', [...shared, '--model', 'conv6', ...timed(25)]);
if (!json) console.log('');
const conv6Levels = run('conv.js', [...(json ? ['--json'] : []), '--model', 'conv6', '--levels', '0,10', '--fc-share', '--steps', '20']);
if (!json) console.log('');
// The batch-norm nets take batches of 128 and far longer steps: fewer of them.
const resnet20 = run('conv.js', [...shared, '--model', 'cifar_resnet_20', ...timed(5), '--warmup', '2']);
if (!json) console.log('');
const vgg16 = run('conv.js', [...shared, '--model', 'cifar_vgg_16', ...timed(5), '--warmup', '1']);
if (!json) console.log('');
const charLstm = run('seq.js', [...shared, '--model', 'char_lstm', ...timed(10)]);
if (!json) console.log('');
const textTransformer = run('seq.js', [...shared, '--model', 'text_transformer', ...timed(10)]);
if (!json) console.log('');
const dst = run('dst.js', json ? ['--json'] : []);
if (!json) console.log('');
const structured = run('structured.js', json ? ['--json'] : []);
if (!json) console.log('');
const startup = run('startup.js', json ? ['--json'] : []);
if (!json) console.log('');
const queue = run('queue.js', json ? ['--json'] : []);
if (json) console.log(JSON.stringify({ ...lenet, conv2, conv6, conv6Levels, resnet20, vgg16, seq: { char_lstm: charLstm, text_transformer: textTransformer }, dst, structured, startup, queue }));
