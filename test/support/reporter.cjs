// mocha's spec reporter, plus one closing line CI reads: "N passed, N failed". When the MariaDB and
// Redis targets did not run (TEST_DATABASE_URL / TEST_REDIS_URL unset, see test/support/targets.ts),
// a banner right above that line says so: a green run on SQLite alone has not exercised the race
// controls, because SQLite serialises transactions.
const Mocha = require('mocha');
const { Spec } = Mocha.reporters;
const { EVENT_RUN_END, EVENT_SUITE_BEGIN } = Mocha.Runner.constants;

function skippedTargetsBanner(sqliteOnlySuites, color) {
  const missing = ['TEST_DATABASE_URL', 'TEST_REDIS_URL'].filter((name) => !process.env[name]);
  const bar = '!'.repeat(100);
  const lines = [
    bar,
    `!! MariaDB + Redis suites DID NOT RUN: ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not set.`,
    `!! ${sqliteOnlySuites} suite(s) ran on SQLite only. SQLite serialises transactions, so the race controls`,
    '!! (payment limits, job claims, idempotency, reminders) only bite on MariaDB. To test the scaled mode:',
    '!!   TEST_DATABASE_URL=mysql://root@127.0.0.1:3306/test TEST_REDIS_URL=redis://127.0.0.1:6379 npm test',
    bar,
  ];
  const text = lines.join('\n');
  return color ? `\u001b[1;33m${text}\u001b[0m\n` : `${text}\n`;
}

class PaylinkReporter extends Spec {
  constructor(runner, options) {
    super(runner, options);
    let sqliteOnlySuites = 0;
    runner.on(EVENT_SUITE_BEGIN, (suite) => {
      if (suite.title.endsWith('[sqlite]')) sqliteOnlySuites++;
    });
    runner.once(EVENT_RUN_END, () => {
      const s = runner.stats || this.stats;
      // Registered after the spec epilogue's listener, so these are the last lines printed.
      if (!process.env.TEST_DATABASE_URL || !process.env.TEST_REDIS_URL) {
        process.stdout.write(`\n${skippedTargetsBanner(sqliteOnlySuites, Boolean(process.stdout.isTTY))}`);
      }
      process.stdout.write(`${s.passes} passed, ${s.failures} failed\n`);
    });
  }
}
module.exports = PaylinkReporter;
