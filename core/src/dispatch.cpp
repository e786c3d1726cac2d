// The host instruction-set dispatch of the compiled library (fastknn/isa.hpp): the entry points
// of the host execution spaces (fastknn/detail/eti.hpp) are defined here as forwarders to the
// chosen variant's module, found next to this library and loaded once with dlopen. The modules'
// own symbols are hidden: code compiled for AVX-512 never stands in for generic code.

#include <fastknn/detail/eti.hpp>
#include <fastknn/isa.hpp>

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

namespace
{

/// What the modules export (extern "C", the only visible symbols they have).
using SymbolFn = void *(*)(char const *);

/// The variants in a comma-separated list.
std::vector<std::string> split(std::string const &all)
{
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= all.size())
  {
    std::size_t const end = std::min(all.find(',', start), all.size());
    if (end > start)
      out.push_back(all.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool cpu_supports(char const *name)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (std::strcmp(name, "avx2") == 0)
    return __builtin_cpu_supports("x86-64-v3");
  if (std::strcmp(name, "avx512") == 0)
    return __builtin_cpu_supports("x86-64-v4");
  if (std::strcmp(name, "avx512vnni") == 0)
    return __builtin_cpu_supports("x86-64-v4") && __builtin_cpu_supports("avx512vnni");
#endif
  // generic and native run everywhere; so do the test-only variants (generic flags)
  for (auto const &test_variant : split(FASTKNN_ISA_TEST_VARIANT_LIST))
    if (test_variant == name)
      return true;
  return std::strcmp(name, "generic") == 0 || std::strcmp(name, "native") == 0;
}

/// The variants this library was built with, best first (CMake's FASTKNN_ISA_VARIANTS).
std::vector<std::string> built_variants()
{
  return split(FASTKNN_ISA_VARIANT_LIST);
}

std::string variant_list()
{
  std::string s;
  for (auto const &v : built_variants())
    s += (s.empty() ? "" : ", ") + v + (cpu_supports(v.c_str()) ? "" : " (not on this CPU)");
  return s;
}

/// Directories to look for the modules in: next to the object holding this code (the shared
/// library, or the program it was linked into), then where the build and the install put them.
std::vector<std::string> module_dirs()
{
  std::vector<std::string> dirs;
  Dl_info info{};
  if (dladdr(reinterpret_cast<void *>(&fastknn::host_isa), &info) != 0 && info.dli_fname)
  {
    std::string path = info.dli_fname;
    auto const slash = path.rfind('/');
    dirs.push_back(slash == std::string::npos ? "." : path.substr(0, slash));
  }
  dirs.emplace_back(FASTKNN_ISA_BUILD_DIR);
  dirs.emplace_back(FASTKNN_ISA_INSTALL_DIR);
  return dirs;
}

struct Chosen
{
  std::string name;
  SymbolFn symbol = nullptr;
};

std::string module_file(std::string const &name) { return "libfastknn_isa_" + name + ".so"; }

/// Whether the variant's module is where load() looks (a build of one target has only the
/// module of the machine that built it; an install has them all).
bool module_present(std::string const &name)
{
  for (auto const &dir : module_dirs())
    if (access((dir + "/" + module_file(name)).c_str(), R_OK) == 0)
      return true;
  return false;
}

Chosen load(std::string const &name)
{
  std::string tried;
  std::string const file = module_file(name);
  for (auto const &dir : module_dirs())
  {
    std::string const path = dir + "/" + file;
    void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle)
    {
      char const *why = dlerror();
      tried += "\n  " + path + ": " + (why ? why : "not loadable");
      continue;
    }
    auto symbol = reinterpret_cast<SymbolFn>(dlsym(handle, "fastknn_isa_symbol"));
    if (!symbol)
      throw fastknn::Error(path + " is not a fastknn instruction-set module (no "
                                  "fastknn_isa_symbol); reinstall fastknn");
    return {name, symbol};
  }
  throw fastknn::Error("cannot load the '" + name + "' kernels (" + file + "); tried:" + tried +
                       "\ninstall the library with its modules (cmake --install) or keep them "
                       "next to libfastknn");
}

Chosen choose()
{
  auto const variants = built_variants();
  if (char const *forced = std::getenv("FASTKNN_ISA"); forced && *forced)
  {
    auto const tests = split(FASTKNN_ISA_TEST_VARIANT_LIST);
    bool const built =
        std::find(variants.begin(), variants.end(), std::string(forced)) != variants.end() ||
        std::find(tests.begin(), tests.end(), std::string(forced)) != tests.end();
    if (!built)
      throw fastknn::Error(std::string("FASTKNN_ISA=") + forced +
                           " is not a variant this library holds; use one of: " + variant_list());
    if (!cpu_supports(forced))
      throw fastknn::Error(std::string("FASTKNN_ISA=") + forced +
                           " asks for instructions this CPU lacks; use one of: " + variant_list());
    return load(forced);
  }
  // The best variant the CPU supports whose module is present.
  for (auto const &v : variants)
    if (cpu_supports(v.c_str()) && module_present(v))
      return load(v);
  throw fastknn::Error("no instruction-set module of this library that this CPU runs was found (" +
                       variant_list() + "; looked next to libfastknn, in " FASTKNN_ISA_BUILD_DIR
                       " and in " FASTKNN_ISA_INSTALL_DIR "); build them (cmake --build) or "
                       "reinstall fastknn");
}

Chosen const &chosen()
{
  // Chosen once; a failure (bad FASTKNN_ISA, missing module) is reported again on the next call.
  static std::mutex mutex;
  static Chosen c;
  std::lock_guard lock(mutex);
  if (!c.symbol)
    c = choose();
  return c;
}

} // namespace

namespace fastknn
{

char const *host_isa()
{
  return chosen().name.c_str();
}

std::vector<IsaVariant> host_isa_variants()
{
  std::vector<IsaVariant> out;
  for (auto const &v : built_variants())
    out.push_back({v, cpu_supports(v.c_str())});
  return out;
}

namespace detail
{
void *isa_symbol(char const *name)
{
  void *f = chosen().symbol(name);
  if (!f)
    throw Error(std::string("the '") + chosen().name + "' kernels lack " + name +
                "; the module does not match this library: reinstall fastknn");
  return f;
}
} // namespace detail

} // namespace fastknn

// The forwarders: explicit specialisations (declared in eti.hpp) of each host entry point.
#define FASTKNN_FORWARD(SPACE, T, LAYOUT)                                                          \
  template <>                                                                                      \
  ::fastknn::detail::DatabaseSummary<T, SPACE::memory_space>                                       \
  fastknn::detail::summarise_entry<SPACE, T, LAYOUT>(                                              \
      SPACE const &space, EntryView<T, LAYOUT, SPACE::memory_space> const &database,               \
      ::fastknn::Metric metric)                                                                    \
  {                                                                                                \
    static auto const f = reinterpret_cast<decltype(&summarise_entry<SPACE, T, LAYOUT>)>(          \
        isa_symbol(FASTKNN_ETI_NAME(summarise, SPACE, T, LAYOUT)));                                \
    return f(space, database, metric);                                                             \
  }                                                                                                \
  template <>                                                                                      \
  ::fastknn::Neighbors<SPACE::memory_space, T> fastknn::detail::search_entry<SPACE, T, LAYOUT>(    \
      SPACE const &space, EntryView<T, LAYOUT, SPACE::memory_space> const &database,               \
      DatabaseSummary<T, SPACE::memory_space> const &summary,                                      \
      EntryView<T, Kokkos::LayoutRight, SPACE::memory_space> const &queries, Plan const &plan,     \
      ::fastknn::SearchOptions const &options)                                                     \
  {                                                                                                \
    static auto const f = reinterpret_cast<decltype(&search_entry<SPACE, T, LAYOUT>)>(             \
        isa_symbol(FASTKNN_ETI_NAME(search, SPACE, T, LAYOUT)));                                   \
    return f(space, database, summary, queries, plan, options);                                    \
  }

#define FASTKNN_FORWARD_VALUE(SPACE, T)                                                            \
  template <>                                                                                      \
  ::fastknn::detail::Plan fastknn::detail::plan_entry<SPACE, T>(                                   \
      SPACE const &space, std::size_t n, std::size_t q, std::size_t d, std::size_t d_queries,      \
      int k, ::fastknn::SearchOptions const &options)                                              \
  {                                                                                                \
    static auto const f = reinterpret_cast<decltype(&plan_entry<SPACE, T>)>(                       \
        isa_symbol(FASTKNN_ETI_NAME(plan, SPACE, T, -)));                                          \
    return f(space, n, q, d, d_queries, k, options);                                               \
  }                                                                                                \
  FASTKNN_FORWARD(SPACE, T, Kokkos::LayoutRight)                                                   \
  FASTKNN_FORWARD(SPACE, T, Kokkos::LayoutLeft)

#define FASTKNN_FORWARD_SPACE(SPACE)                                                               \
  template <>                                                                                      \
  ::fastknn::detail::TeamShape fastknn::detail::shape_entry<SPACE>(std::size_t teams_wanted)       \
  {                                                                                                \
    static auto const f = reinterpret_cast<decltype(&shape_entry<SPACE>)>(                         \
        isa_symbol(FASTKNN_ETI_NAME(shape, SPACE, -, -)));                                         \
    return f(teams_wanted);                                                                        \
  }                                                                                                \
  FASTKNN_FORWARD_VALUE(SPACE, float)                                                              \
  FASTKNN_FORWARD_VALUE(SPACE, double)

FASTKNN_ETI_HOST_SPACES(FASTKNN_FORWARD_SPACE)
