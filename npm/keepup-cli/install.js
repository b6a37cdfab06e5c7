// Runs at install time: puts the native keepup binary of this platform where
// npm's `bin` link points, so `npm start` runs keepup itself, with no Node
// process between npm and keepup (a JS wrapper would sit in the signal path
// and cost ~40 ms of start-up).
'use strict';
const fs = require('fs');
const path = require('path');

const platforms = { 'linux x64': 'keepup-cli-linux-x64', 'linux arm64': 'keepup-cli-linux-arm64' };
const pkg = platforms[`${process.platform} ${process.arch}`];
const target = path.join(__dirname, 'bin', 'keepup');

if (!pkg) {
  console.error(`keepup: no native binary for ${process.platform} ${process.arch}; the bin/keepup shim will say so`);
  process.exit(0);
}
let binary;
try {
  binary = require.resolve(`${pkg}/bin/keepup`);
} catch (e) {
  console.error(`keepup: the optional package ${pkg} is missing (installed with --no-optional?); the bin/keepup shim will run it if it appears`);
  process.exit(0);
}
const tmp = `${target}.${process.pid}.tmp`;
fs.copyFileSync(binary, tmp);
fs.chmodSync(tmp, 0o755);
fs.renameSync(tmp, target);
