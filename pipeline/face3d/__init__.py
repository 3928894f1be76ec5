"""3D looks of the avatar: a textured head-and-shoulders rig rendered with OpenGL."""
