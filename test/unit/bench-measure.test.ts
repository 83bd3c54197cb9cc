import assert from 'node:assert/strict';
import { merge, percentile, summarise, type Sample } from '../../bench/measure.js';

const sample = (cycles: number, windowMs: number, latencies: number[] = [], statements = 2 * cycles): Sample => ({ cycles, windowMs, latencies, statements, errors: 0 });

describe('bench measurements (pure)', () => {
  it('adds up the windows of slices measured one after another, not of processes measured together', () => {
    assert.equal(summarise(merge([sample(100, 1000), sample(300, 1000)], 'sequential')).cyclesPerSec, 200);
    assert.equal(summarise(merge([sample(100, 1000), sample(300, 1000)], 'parallel')).cyclesPerSec, 400);
  });

  it('counts statements per operation: a cycle is an acquire and a release', () => {
    assert.equal(summarise(sample(10, 1000, [], 20)).statementsPerOp, 1);
    assert.equal(summarise(sample(10, 1000, [], 5)).statementsPerOp, 0.25);
  });

  it('takes nearest-rank percentiles', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentile(values, 50), 50);
    assert.equal(percentile(values, 99), 99);
    assert.equal(percentile([7], 99), 7);
    assert.ok(Number.isNaN(percentile([], 50)));
  });
});
