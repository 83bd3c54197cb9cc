// Writes dist/index.mjs: an ES module facade over the CommonJS build, so that
// `import` and `require` share one copy of the library (one LockError class,
// one set of diagnostics channels) instead of the dual-package hazard.
// Named exports only, as from require(): there is no default export, and
// dist/index.d.mts (the types `import` resolves to) says so, so that
// `import locktable from 'locktable'` fails to compile rather than at run time.
const fs = require('node:fs');
const path = require('node:path');
const dist = path.join(__dirname, '..', 'dist');
const names = Object.keys(require(path.join(dist, 'index.js'))).filter((n) => n !== 'default' && n !== '__esModule');
const body = `import cjs from './index.js';\nexport const { ${names.join(', ')} } = cjs;\n`;
fs.writeFileSync(path.join(dist, 'index.mjs'), body);
// Its declarations: the same values by name (so that the types list exactly
// what index.mjs exports), and every type.
fs.writeFileSync(path.join(dist, 'index.d.mts'), `export type * from './index.js';\nexport { ${names.join(', ')} } from './index.js';\n`);
