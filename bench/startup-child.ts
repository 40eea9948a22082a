/**
 * One `lth train`-like start, timed phase by phase (run by bench/startup.ts in a fresh
 * process each time): Node's own start, loading lth (with its addon), resolving the run
 * settings, loading and splitting MNIST, building and initialising LeNet-300-100, then
 * compiling it and making one training step, and one evaluation pass. Prints one JSON
 * object of milliseconds.
 */
const nodeMs = process.uptime() * 1000;
const t0 = performance.now();
const lth = await import('../src/index.js');
const t1 = performance.now();
const context = lth.resolveContext();
const t2 = performance.now();
const data = lth.getDataset('mnist').load(undefined, 0);
const t3 = performance.now();
const model = lth.getModel('lenet_300_100').build();
model.initialize(new lth.Rng(0, 'init'));
const t4 = performance.now();
const program = lth.compileProgram(model, { optimizer: { name: 'adam', lr: 1.2e-3, momentum: 0, weightDecay: 0 }, context });
program.step({ data: data.train, order: new lth.Rng(0, 'data', 0).permutation(data.train.length), from: 0, batchSize: 60 }, new Float64Array(1));
const t5 = performance.now();
program.evaluate(data.validation);
program.evaluate(data.test);
const t6 = performance.now();
console.log(JSON.stringify({ node: nodeMs, import: t1 - t0, context: t2 - t1, data: t3 - t2, model: t4 - t3, firstStep: t5 - t4, evaluation: t6 - t5 }));
