mkdir -p /tmp/stage && cp .dev/c*/part.* /tmp/stage/ && ls -la /tmp/stage | tail -n +2 | awk '{print $5, $9}' | tr '\n' ' '
