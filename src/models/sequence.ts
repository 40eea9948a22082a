/**
 * Models for sequences: text classification on spam (text_cnn, text_transformer),
 * character-level language models on moby_dick (char_lstm, char_transformer) and a 1-D
 * conv net on sensor windows (sensor_cnn). Every weight matrix is prunable (embeddings and
 * the LSTM's recurrent matrices too, as Yu et al. 2020 prune their LSTMs and Transformers);
 * biases, layer norms and position embeddings are not. To keep a layer dense, prune with a
 * global strategy and --ignore it (e.g. --strategy magnitude_global --ignore embed.weight).
 */
import { MOBY_LENGTH, MOBY_VOCABULARY } from '../data/moby-dick.js';
import { SENSOR_WINDOW } from '../data/sensor.js';
import { SPAM_LENGTH, SPAM_VOCABULARY } from '../data/spam.js';
import { Linear } from '../nn/layers.js';
import { Model } from '../nn/model.js';
import type { Module } from '../nn/module.js';
import { Conv1d, Embedding, FlattenTime, LSTM, LayerNorm, MaxOverTime, MeanOverTime, PositionEmbedding, SwapAxes, TransformerBlock } from '../nn/seq-layers.js';
import type { ModelSpec } from './spec.js';

/** Every prunable weight at `rate` per round, the output layer at half (the paper's convention). */
function uniformRates(rate: number): ModelSpec['pruningRates'] {
  return (model) => new Map(model.prunableLayers().map((l) => [l.name, l.output ? rate / 2 : rate]));
}

function transformer(vocabulary: number, length: number, dim: number, heads: number, layers: number): Array<[string, Module]> {
  const out: Array<[string, Module]> = [['embed', new Embedding(vocabulary, dim)], ['pos', new PositionEmbedding(length, dim)]];
  for (let i = 0; i < layers; i++) out.push([`block${i + 1}`, new TransformerBlock(dim, heads, 4 * dim)]);
  out.push(['norm', new LayerNorm(dim)]);
  return out;
}

const textCnn = () => new Model('text_cnn', [
  ['embed', new Embedding(SPAM_VOCABULARY, 64)], ['swap', new SwapAxes()], ['conv', new Conv1d(64, 128, 5, 'same', 'relu')],
  ['pool', new MaxOverTime()], ['fc', new Linear(128, 2, 'none')],
]);

const textTransformer = () => new Model('text_transformer', [
  ...transformer(SPAM_VOCABULARY, SPAM_LENGTH, 64, 4, 2), ['pool', new MeanOverTime()], ['fc', new Linear(64, 2, 'none')],
]);

const charLstm = () => new Model('char_lstm', [
  ['embed', new Embedding(MOBY_VOCABULARY, 64)], ['lstm', new LSTM(64, 256, 2)], ['flat', new FlattenTime()], ['head', new Linear(256, MOBY_VOCABULARY, 'none')],
]);

const charTransformer = () => new Model('char_transformer', [
  ...transformer(MOBY_VOCABULARY, MOBY_LENGTH, 128, 4, 4), ['flat', new FlattenTime()], ['head', new Linear(128, MOBY_VOCABULARY, 'none')],
]);

const sensorCnn = () => new Model('sensor_cnn', [
  ['conv1', new Conv1d(2, 32, 5, 'same', 'relu')], ['conv2', new Conv1d(32, 64, 5, 'same', 'relu')], ['pool', new MaxOverTime()],
  ['fc1', new Linear(64, 64, 'relu')], ['fc2', new Linear(64, 2, 'none')],
]);

function spec(name: string, build: () => Model, description: string, training: ModelSpec['training']): ModelSpec {
  return { name, description, training, build, pruningRates: uniformRates(0.2) };
}

export function sequenceSpecs(): ModelSpec[] {
  return [
    spec('text_cnn', textCnn, `spam: embedding ${SPAM_VOCABULARY}x64, 1-D conv 128x5 (ReLU), max over time, fc 2 (681,216 prunable weights)`,
      { dataset: 'spam', steps: '8ep', batchSize: 32, optimizer: 'adam', lr: 1e-3 }),
    spec('text_transformer', textTransformer, `spam: embedding ${SPAM_VOCABULARY}x64 + positions, 2 pre-LN Transformer blocks (d=64, 4 heads, causal), mean over time, fc 2 (738,432 prunable weights)`,
      { dataset: 'spam', steps: '10ep', batchSize: 32, optimizer: 'adam', lr: 5e-4 }),
    spec('char_lstm', charLstm, `moby_dick: embedding ${MOBY_VOCABULARY}x64, 2-layer LSTM 256, next-character head (882,688 prunable weights)`,
      { dataset: 'moby_dick', steps: '2000it', batchSize: 32, optimizer: 'adam', lr: 2e-3 }),
    spec('char_transformer', charTransformer, `moby_dick: embedding ${MOBY_VOCABULARY}x128 + positions, 4 pre-LN Transformer blocks (d=128, 4 heads, causal), next-character head (811,008 prunable weights)`,
      { dataset: 'moby_dick', steps: '2000it', batchSize: 32, optimizer: 'adam', lr: 1e-3 }),
    spec('sensor_cnn', sensorCnn, `sensor: 1-D convs 32x5, 64x5 (ReLU) over ${SENSOR_WINDOW} readings, max over time, fc 64, 2 (14,784 prunable weights)`,
      { dataset: 'sensor', steps: '10ep', batchSize: 64, optimizer: 'adam', lr: 1e-3 }),
  ];
}
