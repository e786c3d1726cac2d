// Compiled with -ffast-math by the test fastknn_fast_math_refused, which passes when the build
// fails with fastknn's message: the exactness proof needs IEEE arithmetic, so such builds are
// refused at compile time instead of returning wrong neighbours.
#include <fastknn/search.hpp>
