# Sourced by the scripts that time PyTorch beside DiffuSharp: stops them when PyTorch would run its matrix products on
# the reference (netlib) BLAS. Debian's python3-torch calls whatever libblas.so.3 the alternatives system points at;
# without an OpenBLAS package that is netlib's Fortran BLAS, about 6 GFLOP/s per core instead of OpenBLAS's 80-100,
# and every Linear layer and attention product of PyTorch would be timed at a fraction of its real speed.
torch_blas_check() {
  local blas
  blas="$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)"
  case "$blas" in
    *openblas*) ;;
    *) echo "error: PyTorch here would run its matrix products on ${blas:-no BLAS at all}, not OpenBLAS; install OpenBLAS (apt-get install libopenblas0-pthread) for a fair comparison" >&2
       exit 1 ;;
  esac
}
torch_blas_check
