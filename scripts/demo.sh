#!/usr/bin/env bash
# thaw's main job on MovieLens 100K, as `make demo` runs it:
#   1. ingest the dataset into a SQLite file and print its statistics;
#   2. evaluate thaw beside the baselines on the cold-start scenarios (one fold: a quick look;
#      `make bench-quality` runs the full 5-fold cross-validation);
#   3. train thaw on the whole store and write a checkpoint;
#   4. serve it over HTTP, after printing requests to try (DEMO_SERVE=0 stops before serving).
# Settings (environment): DEMO_DB (default var/demo.sqlite), DEMO_PORT (8000), DEMO_FOLDS (1),
# THAW (the thaw command), THAW_DATA (where ml-100k lives).
set -euo pipefail

THAW=${THAW:-.venv/bin/thaw}
DB_FILE=${DEMO_DB:-var/demo.sqlite}
DB="sqlite:///${DB_FILE}"
MODEL=${DEMO_MODEL:-var/demo-model}
REPORT=${DEMO_REPORT:-var/demo-report}
PORT=${DEMO_PORT:-8000}
FOLDS=${DEMO_FOLDS:-1}
SERVE=${DEMO_SERVE:-1}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

mkdir -p "$(dirname "$DB_FILE")"

step "1/4 ingest MovieLens 100K into ${DB_FILE} (re-running changes nothing)"
"$THAW" ingest ml-100k --db "$DB"
"$THAW" stats --db "$DB"

step "2/4 evaluate: thaw against the baselines, ${FOLDS} fold(s), same folds for every model"
echo "cold-user: new users with attributes only; onboarding-3: new users after their first 3"
echo "interactions; onboarding-3-random: after 3 of their interactions drawn at random;"
echo "cold-item: new movies with their title and genres only; warm: everyone else."
"$THAW" evaluate --db "$DB" --dataset ml-100k --encoder minilm --folds "$FOLDS" \
    --scenario cold-user,onboarding-3,onboarding-3-random,cold-item,warm \
    --models popularity,content-knn,als,thaw --report "$REPORT" --json "$REPORT/results.json"

step "3/4 train thaw on the whole store"
"$THAW" train --db "$DB" --out "$MODEL"

if [[ "$SERVE" == "0" ]]; then
    step "done (DEMO_SERVE=0): serve it with  $THAW serve --db $DB --model $MODEL"
    exit 0
fi

step "4/4 serve on http://127.0.0.1:${PORT} (Ctrl-C stops it)"
base="localhost:${PORT}"
cat <<EOF
Open http://127.0.0.1:${PORT}/ for the dashboard, http://127.0.0.1:${PORT}/docs for the API.
Requests to try from another terminal (no keys are configured, so the API is open; set
THAW_READ_KEYS / THAW_WRITE_KEYS / THAW_ADMIN_KEYS to require them):

  curl -s ${base}/health
  # a known user, with the reasons behind each result
  curl -s '${base}/users/1/recommendations?k=5&explain=true'
  # someone new: a few attributes and two liked movies (Star Wars, Contact), nothing stored
  curl -s -X POST ${base}/recommendations -H 'content-type: application/json' \\
       -d '{"liked_items": ["50", "258"], "attributes": {"age": 25, "gender": "F"}, "k": 5, "explain": true}'
  # a new movie is recommendable as soon as the POST returns
  curl -s -X POST ${base}/items -H 'content-type: application/json' \\
       -d '{"id": "new-1", "title": "Space Odyssey Returns (2026)", "attributes": {"genres": ["Sci-Fi"]}}'
  curl -s '${base}/items/new-1/similar?k=5'
  # an event changes user 1's list on the next request, without retraining
  curl -s -X POST ${base}/events -H 'content-type: application/json' \\
       -d '[{"user": "1", "item": "new-1", "type": "purchase", "idempotency_key": "demo-1"}]'
  curl -s -X POST ${base}/admin/train      # retrain in the background; swapped in only if not worse
  curl -s ${base}/admin/models

EOF
exec "$THAW" serve --db "$DB" --model "$MODEL" --port "$PORT" --log-format text
