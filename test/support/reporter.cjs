// mocha's spec reporter, plus one closing line CI reads: "N passed, N failed".
const Mocha = require('mocha');
const { Spec } = Mocha.reporters;
const { EVENT_RUN_END } = Mocha.Runner.constants;

class PaylinkReporter extends Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once(EVENT_RUN_END, () => {
      const s = runner.stats || this.stats;
      // Registered after the spec epilogue's listener, so this is the last line printed.
      process.stdout.write(`${s.passes} passed, ${s.failures} failed\n`);
    });
  }
}
module.exports = PaylinkReporter;
