"""Values that included task files share through ``host.data``, explicitly.

deploy.py hands each task file its data with ``local.include(..., data=...)``; pyinfra gives each
include shallow copies of those values, so a plain list one task fills would never reach the next.
Nothing is shared through a module's globals.
"""

class SharedList(list):
    """A list that included task files share: ``host.data`` hands out shallow copies of its values,
    so a plain list filled by one task would never reach the next. deploy.py makes one per host."""

    def __copy__(self):
        return self
