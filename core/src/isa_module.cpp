// The table of one instruction-set module (libfastknn_isa_<name>.so): the addresses of the host
// entry points its sibling units instantiate (core/src/eti.cpp.in, compiled for this variant),
// by name. Everything else in the module is hidden; the dispatcher (core/src/dispatch.cpp)
// loads the module and asks it for the entry points by these names.
#define FASTKNN_ETI_BUILDING 1
#include <fastknn/detail/eti.hpp>

#include <cstring>

// The sibling units' instantiations (no second copy here).
#define FASTKNN_MODULE_EXTERN(SPACE) FASTKNN_ETI_SPACE(extern template, SPACE)
FASTKNN_ETI_HOST_SPACES(FASTKNN_MODULE_EXTERN)

namespace
{
struct Entry
{
  char const *name;
  void *address;
};

#define FASTKNN_MODULE_ROW(SPACE, T, LAYOUT)                                                       \
  {FASTKNN_ETI_NAME(summarise, SPACE, T, LAYOUT),                                                  \
   reinterpret_cast<void *>(&fastknn::detail::summarise_entry<SPACE, T, LAYOUT>)},                 \
      {FASTKNN_ETI_NAME(search, SPACE, T, LAYOUT),                                                 \
       reinterpret_cast<void *>(&fastknn::detail::search_entry<SPACE, T, LAYOUT>)},
#define FASTKNN_MODULE_VALUE_ROWS(SPACE, T)                                                        \
  {FASTKNN_ETI_NAME(plan, SPACE, T, -),                                                            \
   reinterpret_cast<void *>(&fastknn::detail::plan_entry<SPACE, T>)},                              \
      FASTKNN_MODULE_ROW(SPACE, T, Kokkos::LayoutRight)                                            \
          FASTKNN_MODULE_ROW(SPACE, T, Kokkos::LayoutLeft)
#define FASTKNN_MODULE_ROWS(SPACE)                                                                 \
  {FASTKNN_ETI_NAME(shape, SPACE, -, -),                                                           \
   reinterpret_cast<void *>(&fastknn::detail::shape_entry<SPACE>)},                                \
      FASTKNN_MODULE_VALUE_ROWS(SPACE, float) FASTKNN_MODULE_VALUE_ROWS(SPACE, double)

Entry const table[] = {FASTKNN_ETI_HOST_SPACES(FASTKNN_MODULE_ROWS){nullptr, nullptr}};
} // namespace

/// The entry point called `name` (FASTKNN_ETI_NAME), or null.
extern "C" __attribute__((visibility("default"))) void *fastknn_isa_symbol(char const *name)
{
  for (Entry const *e = table; e->name; ++e)
    if (std::strcmp(e->name, name) == 0)
      return e->address;
  return nullptr;
}
