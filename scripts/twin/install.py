"""Which twin modules the moto server installs, and in what order.

Each module has `install(twin)` (patch moto models, register controls and background
loops) and may have `wrap(app, twin) -> app` (a WSGI layer). Layers are applied in the
order below, so the last one listed is the outermost (just inside the `/_twin/` controls).
"""

MODULES: list = []


def install(twin) -> None:
    for module in MODULES:
        module.install(twin)


def wrap(app, twin):
    for module in MODULES:
        layer = getattr(module, "wrap", None)
        if layer is not None:
            app = layer(app, twin)
    return app


from . import route53  # noqa: E402
from . import dns  # noqa: E402
from . import rds  # noqa: E402
from . import compute  # noqa: E402

MODULES.append(route53)
MODULES.append(dns)
MODULES.append(rds)
MODULES.append(compute)


from . import events  # noqa: E402
from . import cloudwatch  # noqa: E402

MODULES.append(events)
MODULES.append(cloudwatch)

from . import stack  # noqa: E402

MODULES.append(stack)


# Keep these last: the Region faults wrap every other layer, and the call log wraps the
# faults (so faulted calls are logged with their fault). Register other modules above.
from . import workload  # noqa: E402
from . import faults  # noqa: E402
from . import calllog  # noqa: E402

MODULES.append(workload)
MODULES.append(faults)
MODULES.append(calllog)
