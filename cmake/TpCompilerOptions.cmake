# Warning and sanitizer flags, applied per target so that nothing leaks into
# third-party code and every tickplane target is built the same way.

set(TP_WARNINGS -Wall -Wextra -Wshadow -Wpointer-arith -Wformat=2 -Wno-unused-parameter
                $<$<COMPILE_LANGUAGE:C>:-Wstrict-prototypes -Wmissing-prototypes>)

if(TP_SANITIZE)
  set(TP_SANITIZE_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined
                        -fno-omit-frame-pointer)
  # Sanitizers instrument everything that is linked into an executable, so the
  # flags go to the whole build rather than to each target.
  add_compile_options(${TP_SANITIZE_FLAGS})
  add_link_options(${TP_SANITIZE_FLAGS})
endif()

function(tp_target_options target)
  target_compile_options(${target} PRIVATE ${TP_WARNINGS})
  if(TP_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# tp_add_library(name SOURCES...): a module's static library with its public
# include directory and the project's warnings.
function(tp_add_library name)
  add_library(${name} STATIC ${ARGN})
  target_include_directories(${name} PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
                                     PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  tp_target_options(${name})
endfunction()
