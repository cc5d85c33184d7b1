# Code generation from the FlatBuffers schemas, at build time into the build
# tree (generated code is never committed).
#
# tp_flatbuffers_generate(<target> SCHEMAS <a.fbs>... CPP_DIR <dir> PYTHON_DIR <dir>)
#   runs `flatc --cpp` into CPP_DIR (one <name>_generated.h per schema) and
#   `flatc --python` into PYTHON_DIR (the tp.wire package for tests and adapters),
#   and defines <target>, a custom target that depends on all of it. Every output
#   depends on every schema, since the schemas include each other.

find_program(TP_FLATC flatc REQUIRED)

function(tp_flatbuffers_generate target)
  cmake_parse_arguments(F "" "CPP_DIR;PYTHON_DIR" "SCHEMAS" ${ARGN})
  set(headers)
  foreach(fbs ${F_SCHEMAS})
    get_filename_component(name ${fbs} NAME_WE)
    list(APPEND headers ${F_CPP_DIR}/${name}_generated.h)
  endforeach()
  add_custom_command(
    OUTPUT ${headers}
    COMMAND ${TP_FLATC} --cpp -o ${F_CPP_DIR} ${F_SCHEMAS}
    DEPENDS ${F_SCHEMAS}
    COMMENT "flatc --cpp ${target}"
    VERBATIM)
  set(stamp ${F_PYTHON_DIR}/.generated)
  add_custom_command(
    OUTPUT ${stamp}
    COMMAND ${TP_FLATC} --python -o ${F_PYTHON_DIR} ${F_SCHEMAS}
    COMMAND ${CMAKE_COMMAND} -E touch ${stamp}
    DEPENDS ${F_SCHEMAS}
    COMMENT "flatc --python ${target}"
    VERBATIM)
  add_custom_target(${target} DEPENDS ${headers} ${stamp})
endfunction()
