/// @file
/// @brief The extension sobolev_warmstart._core: one expose_<concept> per file.
#include "common.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "C++ core of sobolev_warmstart: tasks, batch ProxDDP solves, chained derivatives, "
            "inverse dynamics, exported-policy rollouts and warm starts";
  sobolev_warmstart::bindings::expose_tasks(m);
  sobolev_warmstart::bindings::expose_solver(m);
  sobolev_warmstart::bindings::expose_sensitivities(m);
  sobolev_warmstart::bindings::expose_policy(m);
  sobolev_warmstart::bindings::expose_lookup(m);
}
