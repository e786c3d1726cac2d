// The instruction-set dispatch (fastknn/isa.hpp): the library runs the best variant this CPU
// supports, or the one FASTKNN_ISA names, and every report says which. The ctest entries
// fastknn_tests_isa_<variant> run the whole suite once per variant the CPU supports.

#include "enabled_spaces.hpp"
#include "helpers.hpp"

#include <fastknn/isa.hpp>

#include <catch2/catch_template_test_macros.hpp>

#include <cstdlib>
#include <string>

using namespace fastknn;
using namespace fastknn::test;

TEST_CASE("dispatch picks the best supported variant or the forced one", "[isa]")
{
  auto const variants = host_isa_variants();
  REQUIRE_FALSE(variants.empty());
  CHECK(variants.back().supported); // the last (generic or native) runs everywhere
  std::string expected;
  if (char const *forced = std::getenv("FASTKNN_ISA"); forced && *forced)
    expected = forced;
  else
    for (auto const &v : variants)
      if (v.supported)
      {
        expected = v.name;
        break;
      }
  INFO("variants held: " << variants.size());
  CHECK(std::string(host_isa()) == expected);
}

TEMPLATE_LIST_TEST_CASE("SearchStats and the tile shape name the kernels that ran", "[isa]",
                        EnabledSpaces)
{
  using Space = TestType;
  std::size_t const n = 500, nq = 9, d = 24;
  auto x = random_matrix<float>(n, d, 3);
  auto q = random_matrix<float>(nq, d, 4);
  Space space;
  auto xd = to_device(space, x, n, d);
  auto qd = to_device(space, q, nq, d);
  SearchStats stats;
  SearchOptions opt;
  opt.stats = &stats;
  auto found = to_host(fastknn::search(space, xd, qd, 5, opt), nq, 5);
  auto const c = compare_with_reference(found, x, n, q, d, opt);
  CHECK(c.wrong_index == 0);
  CHECK(c.bad_value == 0);
  CHECK(std::string(stats.isa) == detail::kernel_isa<Space>());
  auto const shape = detail::tile_shape<Space>(1);
  CHECK(stats.query_block == shape.mr);
  CHECK(stats.database_block == shape.nr);
}
