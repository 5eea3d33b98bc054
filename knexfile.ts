// For the knex CLI: node --import tsx ./node_modules/knex/bin/cli.js --knexfile knexfile.ts migrate:list
// Paylink itself migrates on start and with `npm run paylink -- migrate`.
import { loadConfig } from './src/config.ts';
import { knexConfig } from './src/core/db.ts';

export default knexConfig(loadConfig().database);
