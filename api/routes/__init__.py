"""One APIRouter per resource; routes validate parameters, call `api.views` and shape
the answers."""
