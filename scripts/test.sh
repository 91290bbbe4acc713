#!/usr/bin/env bash
# The one test command (`npm test`): system packages and real-client binaries if missing,
# type-check, lint, then every test file under test/ with Node's test runner.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/system-deps.sh
[ -n "${SHELF_TEST_PG:-}" ] || bash scripts/test-postgres.sh
bash test/e2e/clients/build.sh
npx tsc -p tsconfig.json --noEmit
npx tsc -p web/tsconfig.json --noEmit
npx eslint .
# `npm ci`/`npm install` built dist/ already (prepare): build again only if a source is newer.
if [ ! -f dist/.built ] || [ -n "$(find src web package.json tsconfig.json tsconfig.build.json -newer dist/.built -print -quit)" ]; then
  npm run build --silent
fi

mapfile -t files < <(find test -name '*.test.ts' -not -path '*/node_modules/*' | sort)
exec node --import tsx --test --test-concurrency="${SHELF_TEST_CONCURRENCY:-1}" "${files[@]}"
