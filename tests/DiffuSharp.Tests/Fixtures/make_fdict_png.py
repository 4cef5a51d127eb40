# Writes png/fdict_8x8.png, read by Cli/InputLeakTests.cs (Python 3.11.7 zlib): an 8×8 8-bit gray PNG whose IDAT zlib
# stream uses a preset dictionary (FDICT), which the PNG spec forbids. cd here, then /usr/bin/python3 make_fdict_png.py
import struct, zlib

def chunk(kind, data):
    body = kind + data
    return struct.pack('>I', len(data)) + body + struct.pack('>I', zlib.crc32(body) & 0xffffffff)

raw = b''.join(b'\x00' + bytes(8) for _ in range(8))                     # filter 0, 8 black pixels per row
z = zlib.compressobj(zdict=b'hello world')
idat = z.compress(raw) + z.flush()
ihdr = struct.pack('>IIBBBBB', 8, 8, 8, 0, 0, 0, 0)
open('png/fdict_8x8.png', 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', idat) + chunk(b'IEND', b''))
