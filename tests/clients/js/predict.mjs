// Run a TF.js layers model (model.json + shards + metadata.json) on spectrograms, in real TF.js.
//
//   node predict.mjs MODEL_DIR SPECS.json OUT.json
//
// SPECS.json: {"shape": [n, 43, 232, 1], "data": [n*43*232 numbers, row-major]}
//             (or the nested [n][43][232][1] array itself).
// OUT.json:   {"tfjsVersion", "backend",
//              "probabilities": [n][classes]        -- tf.loadLayersModel(...).predict(x),
//              "recognizer": {"wordLabels": [...],   -- speech-commands BROWSER_FFT recognizer,
//                             "scores": [n][classes]}}  recognize(x) on the same input.
//
// Pure @tensorflow/tfjs on Node has no file:// loader, so the model comes in through
// an IOHandler that reads model.json and the weight shards with fs.

import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';

import tf from '@tensorflow/tfjs';
import speechCommands from '@tensorflow-models/speech-commands';

/** A tf.io.IOHandler whose load() reads a layers model from MODEL_DIR. */
function folderHandler(folder) {
  return {
    async load() {
      const doc = JSON.parse(fs.readFileSync(path.join(folder, 'model.json'), 'utf8'));
      const weightSpecs = [];
      const buffers = [];
      for (const group of doc.weightsManifest) {
        weightSpecs.push(...group.weights);
        for (const shard of group.paths) {
          buffers.push(fs.readFileSync(path.join(folder, shard)));
        }
      }
      const all = Buffer.concat(buffers);
      const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
      return {
        modelTopology: doc.modelTopology,
        weightSpecs,
        weightData,
        format: doc.format,
        generatedBy: doc.generatedBy,
        convertedBy: doc.convertedBy,
      };
    },
  };
}

function readSpectrograms(file) {
  const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  return Array.isArray(doc) ? tf.tensor4d(doc) : tf.tensor4d(doc.data, doc.shape);
}

async function main([modelDir, specsFile, outFile]) {
  if (!outFile) {
    throw new Error('usage: node predict.mjs MODEL_DIR SPECS.json OUT.json');
  }
  await tf.ready();
  const x = readSpectrograms(specsFile);

  const handler = folderHandler(modelDir);
  const model = await tf.loadLayersModel(handler);
  const probs = model.predict(x);
  const probabilities = await probs.array();

  // The speech-commands recognizer takes the same artifacts (its URL loader would need
  // http://) and metadata.json through its Node-only file:// support.
  const artifacts = await handler.load();
  const metadataUrl = 'file://' + path.resolve(modelDir, 'metadata.json');
  const recognizer = speechCommands.create('BROWSER_FFT', undefined, artifacts, metadataUrl);
  await recognizer.ensureModelLoaded();
  const result = await recognizer.recognize(x);
  const rows = x.shape[0] === 1 ? [result.scores] : result.scores;

  const out = {
    tfjsVersion: tf.version.tfjs,
    speechCommandsVersion: speechCommands.version,
    backend: tf.getBackend(),
    probabilities,
    recognizer: {wordLabels: recognizer.wordLabels(), scores: rows.map((r) => Array.from(r))},
  };
  fs.writeFileSync(outFile, JSON.stringify(out));
}

main(process.argv.slice(2)).catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
