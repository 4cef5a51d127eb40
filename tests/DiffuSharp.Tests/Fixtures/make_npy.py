# Writes the .npy fixtures read by IO/NpyTests.cs (numpy 1.24.2): cd here, then /usr/bin/python3 make_npy.py
import numpy as np
a = (np.arange(6, dtype='<f4').reshape(2, 3) / 4 - 0.5).astype('<f4')       # [[-0.5, -0.25, 0], [0.25, 0.5, 0.75]]
np.save('f4_2x3.npy', a); np.save('f4_scalar.npy', np.float32(1.5)); np.save('f4_fortran.npy', np.asfortranarray(a))
np.save('f8_4.npy', np.array([0.1, -2.5, 1e-3, 3e38], dtype='<f8'))
for v in (2, 3): np.lib.format.write_array(open(f'f4_v{v}.npy', 'wb'), a, version=(v, 0))
