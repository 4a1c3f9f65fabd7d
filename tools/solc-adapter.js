#!/usr/bin/env node
// A native-solc-compatible command over solc-js (npm `solc`), for offline machines.
// Supports the two calls py-solc-x and ezkl make: `--version` and `--standard-json`.
// It reads all of stdin into a file first (solc-js fails with EAGAIN on a non-blocking pipe)
// and writes the result to a file before printing it (large output can be cut on a pipe).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const solc = require(path.join(__dirname, 'node_modules', 'solc'));

function readStdinToFile(file) {
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(1 << 16);
  for (;;) {
    let read;
    try {
      read = fs.readSync(0, chunk, 0, chunk.length, null);
    } catch (err) {
      if (err.code === 'EAGAIN') { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5); continue; }
      if (err.code === 'EOF') break;
      throw err;
    }
    if (read === 0) break;
    fs.writeSync(fd, chunk, 0, read);
  }
  fs.closeSync(fd);
}

const args = process.argv.slice(2);
if (args.includes('--version')) {
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
} else if (args.includes('--standard-json')) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'solc-adapter-'));
  try {
    const inFile = path.join(dir, 'input.json');
    const outFile = path.join(dir, 'output.json');
    readStdinToFile(inFile);
    fs.writeFileSync(outFile, solc.compile(fs.readFileSync(inFile, 'utf8')));
    fs.writeSync(1, fs.readFileSync(outFile));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
} else {
  process.stderr.write('solc-adapter: only --version and --standard-json are supported\n');
  process.exit(2);
}
