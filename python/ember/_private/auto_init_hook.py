"""``ray._private.auto_init_hook``'s switch: whether the first call that needs a node (put,
get, a task's ``.remote()``...) starts one when none runs, as Ray's does.

``EMBER_ENABLE_AUTO_CONNECT=0`` or Ray's ``RAY_ENABLE_AUTO_CONNECT=0`` in the environment turns
it off; a program (Ray's tests do) may also set ``enable_auto_connect`` here at any time.
"""

from __future__ import annotations

import os

enable_auto_connect = all(os.environ.get(name, "") != "0"
                          for name in ("EMBER_ENABLE_AUTO_CONNECT", "RAY_ENABLE_AUTO_CONNECT"))
