# Sourced by the bench scripts: free_port prints a TCP port on 127.0.0.1
# that nothing listens on. With fixed ports, two benchmarks run at once
# drove each other's servers without a word, and both sets of figures
# were wrong.
free_port() {
  local p
  for p in $(shuf -i 20000-60999 -n 64); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  echo "no free port on 127.0.0.1" >&2
  return 1
}
