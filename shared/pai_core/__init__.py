"""pai_core: the library every PAI server is built on.

Public modules: :mod:`pai_core.errors`, :mod:`pai_core.settings`, :mod:`pai_core.annotations`,
:mod:`pai_core.app` (server construction, tool registration, health), :mod:`pai_core.runtime`
(transports), :mod:`pai_core.audit`, :mod:`pai_core.workspace`, :mod:`pai_core.spec`,
:mod:`pai_core.log`. Importing this package is cheap: it imports no submodule.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
