# Turns a file into a C source holding its bytes, so that the library carries the default
# policy in itself and needs no Lua file at run time (hosts such as nginx load only the .so).
# Usage: cmake -DINPUT=... -DOUTPUT=... -DSYMBOL=... -P embed.cmake
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" hex_len)
math(EXPR byte_count "${hex_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUTPUT}" "/* Generated from ${INPUT} by cmake/embed.cmake. */\n#include <stddef.h>\nconst char ${SYMBOL}[] = {${bytes} 0};\nconst size_t ${SYMBOL}_len = ${byte_count};\n")
