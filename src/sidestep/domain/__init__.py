"""Pure models, state machines and policies. Imports nothing else of Sidestep's."""
