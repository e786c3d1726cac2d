#pragma once
/// \file fastknn/isa.hpp
/// Which instruction-set variant of the compiled library's CPU kernels this process runs.
///
/// The library holds its host pipeline several times, each compiled for one x86-64 level
/// (generic, AVX2 + FMA, AVX-512, AVX-512 with VNNI) in a module of its own
/// (libfastknn_isa_<name>.so, symbols hidden, loaded only when chosen). The first search, or
/// the first call below, picks the best variant the CPU supports; the environment variable
/// FASTKNN_ISA=generic|avx2|avx512|avx512vnni forces one (refused with an Error if the CPU
/// lacks it or the library does not hold it). Other architectures hold one variant, "native".

#include <string>
#include <vector>

#include <fastknn/error.hpp>

namespace fastknn
{

/// One instruction-set variant the library holds.
struct IsaVariant
{
  std::string name; ///< "generic", "avx2", "avx512", "avx512vnni" (or "native")
  bool supported;   ///< this CPU can run it
};

/// The variant the host kernels use in this process ("avx2", ...), choosing and loading it on
/// the first call. Throws fastknn::Error if FASTKNN_ISA names a variant this CPU or library
/// cannot run, or the variant's module cannot be loaded.
char const *host_isa();

/// Every variant the library holds, best first, and whether this CPU supports each.
std::vector<IsaVariant> host_isa_variants();

} // namespace fastknn
