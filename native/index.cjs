// Loads the compiled addon; exports null when it is not built (the sandbox then falls back).
let binding = null;
try {
  binding = require('./build/Release/rrsyncd_native.node');
} catch {
  binding = null;
}
module.exports = binding;
