set -e
cd /work/main
for tag in old new old2 new2; do
  case $tag in old*) git show 886ce74:jaxgan/data/folder.py > jaxgan/data/folder.py;; new*) git checkout -q HEAD -- jaxgan/data/folder.py;; esac
  python benchmarks/input_pipeline.py --decode --rounds ${ROUNDS:-7} --out /tmp/s6/ab_$tag.json > /dev/null 2>&1
done
git checkout -q HEAD -- jaxgan/data/folder.py
