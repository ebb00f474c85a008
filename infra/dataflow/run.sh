#!/usr/bin/env bash
# Run callscope on Google Cloud Dataflow with one NVIDIA T4 per worker.
#   PROJECT=my-proj REGION=us-central1 BUCKET=gs://my-bucket IMAGE=.../worker:0.1.0 \
#     bash infra/dataflow/run.sh gs://my-bucket/calls/manifest.jsonl gs://my-bucket/out/2026-11-24
# The manifest is read by the launcher; audio URIs in it are read by the workers.
set -euo pipefail
INPUT=$1
OUT=$2
: "${PROJECT:?}" "${REGION:?}" "${BUCKET:?}" "${IMAGE:?}"
callscope run "$INPUT" --out "$OUT" \
  --device cuda --compute-type int8_float16 --output-shards 0 \
  --runner=DataflowRunner \
  --project="$PROJECT" --region="$REGION" \
  --temp_location="$BUCKET/tmp" --staging_location="$BUCKET/staging" \
  --sdk_container_image="$IMAGE" --sdk_location=container \
  --experiments=use_runner_v2 \
  --machine_type=n1-standard-8 \
  --dataflow_service_options="worker_accelerator=type:nvidia-tesla-t4;count:1;install-nvidia-driver" \
  --number_of_worker_harness_threads=4 \
  --max_num_workers="${MAX_WORKERS:-20}"
