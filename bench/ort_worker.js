// Time ONNX Runtime inference for bench_infer.py and print one JSON line.
// usage: node ort_worker.js MODEL.onnx BATCH CxHxW THREADS STEPS WARMUP
'use strict';
const ort = require('onnxruntime-node');

async function main() {
  const [path, batchText, shape, threadsText, stepsText, warmupText] = process.argv.slice(2);
  const batch = Number(batchText), threads = Number(threadsText);
  const steps = Number(stepsText), warmup = Number(warmupText);
  const [c, h, w] = shape.split('x').map(Number);
  const session = await ort.InferenceSession.create(path, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  const data = new Float32Array(batch * c * h * w);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i) * 0.5;
  const input = new ort.Tensor('float32', data, [batch, c, h, w]);
  for (let i = 0; i < warmup; i++) await session.run({input});
  const start = process.hrtime.bigint();
  for (let i = 0; i < steps; i++) await session.run({input});
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(JSON.stringify({images_per_sec: steps * batch / seconds, threads}));
}

main().catch((error) => {
  console.error(`ort_worker: ${error.message}`);
  process.exit(1);
});
