// Validate a GLB with the Khronos glTF validator (npm gltf-validator, installed by
// `make gltf-validator` into .tools/): prints the report's issues as JSON.
// usage: NODE_PATH=.tools/gltf-validator/node_modules node validate_gltf.js FILE.glb
const fs = require("fs");
const validator = require("gltf-validator");
const data = new Uint8Array(fs.readFileSync(process.argv[2]));
validator
  .validateBytes(data, { maxIssues: 100 })
  .then((report) => {
    process.stdout.write(JSON.stringify(report.issues));
  })
  .catch((error) => {
    process.stderr.write(String(error));
    process.exit(2);
  });
